// Chitram web UI: progressive enhancement over server-rendered pages. No framework, no build.
// The session cookie is HttpOnly: this script never sees it. State-changing requests carry the
// page's CSRF token (from <meta name="csrf-token">) in the X-CSRF-Token header.
"use strict";

(function () {
  const csrf = () => {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  };

  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  };

  const humanSize = (size) => {
    if (size < 1024) return size + " bytes";
    let value = size;
    for (const unit of ["KB", "MB", "GB"]) {
      value /= 1024;
      if (value < 1024 || unit === "GB") return value.toFixed(1) + " " + unit;
    }
    return size + " bytes";
  };

  const formatTime = (iso) => {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return iso;
    return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  };

  // The API's error envelope, in words a person can act on.
  const errorMessage = (status, text) => {
    try {
      const body = JSON.parse(text);
      if (body && body.detail && body.detail.message) return body.detail.message;
    } catch (e) { /* not JSON: fall through */ }
    if (status === 413) return "The file is too large.";
    if (status === 0) return "The upload did not reach the server (network error).";
    return "The upload failed (HTTP " + status + ").";
  };

  function localizeTimes(root) {
    for (const node of root.querySelectorAll("time[datetime]")) {
      node.title = node.textContent;
      node.textContent = formatTime(node.getAttribute("datetime"));
    }
  }

  // Gallery: more pages by the API's cursor, appended in order, never twice.
  // The placeholder colour behind a card's image while it loads (set through the CSSOM: the
  // page's CSP allows no inline style attributes).
  function placeholder(link) {
    const color = link.dataset.placeholder;
    if (color && /^#[0-9a-f]{6}$/.test(color)) link.style.backgroundColor = color;
  }

  function gallery() {
    const list = document.getElementById("gallery");
    if (list) list.querySelectorAll("a[data-placeholder]").forEach(placeholder);
    const more = document.getElementById("load-more");
    if (!list || !more) return;
    const status = document.getElementById("gallery-status");
    const seen = new Set([...list.querySelectorAll("li[data-id]")].map((li) => li.dataset.id));
    const imageBase = (list.dataset.api || "").replace(/\/ui\/api\/images$/, "/images/");
    let cursor = more.dataset.cursor;
    let busy = false;

    const presets = (list.dataset.presets || "").split(",").filter((p) => /^w[1-9][0-9]*$/.test(p));
    // The same srcset as the server renders (chitram_falcon.web.pages.srcset).
    const srcset = (image) => {
      const widths = new Map();
      for (const preset of presets) {
        const real = Math.min(Number(preset.slice(1)), image.width);
        if (!widths.has(real)) widths.set(real, preset);
      }
      const base = image.url.replace(/\/file$/, "/variants/");
      return [...widths.entries()].sort((a, b) => a[0] - b[0])
        .map(([w, spec]) => base + spec + " " + w + "w").join(", ");
    };

    const card = (image) => {
      const href = imageBase + encodeURIComponent(image.id);
      const img = el("img", { src: image.thumbnail_url, srcset: srcset(image),
        sizes: "(max-width: 40rem) 50vw, 20rem", alt: image.filename, loading: "lazy",
        decoding: "async" });
      const link = el("a", { href, tabindex: "-1", "aria-hidden": "true",
        "data-placeholder": image.dominant_color || "" }, img);
      placeholder(link);
      return el("li", { class: "card", "data-id": image.id },
        link,
        el("div", { class: "caption" },
          el("a", { class: "name", href, text: image.filename }),
          el("span", { class: "meta",
            text: image.width + " × " + image.height + " · " + humanSize(image.file_size) }),
          el("time", { datetime: image.created_at, text: formatTime(image.created_at) })));
    };

    async function loadMore() {
      if (busy || !cursor) return;
      busy = true;
      more.setAttribute("aria-busy", "true");
      more.textContent = "Loading…";
      try {
        const url = list.dataset.api + "?limit=" + encodeURIComponent(list.dataset.limit) +
          "&cursor=" + encodeURIComponent(cursor) + (list.dataset.filter || "");
        const resp = await fetch(url, { headers: { Accept: "application/json" },
          credentials: "same-origin" });
        const text = await resp.text();
        if (!resp.ok) throw new Error(errorMessage(resp.status, text));
        const page = JSON.parse(text);
        let added = 0;
        for (const image of page.items) {
          if (seen.has(image.id)) continue;
          seen.add(image.id);
          list.append(card(image));
          added += 1;
        }
        cursor = page.next_cursor;
        if (status) status.textContent = "Loaded " + added + " more images.";
        if (!cursor) {
          more.parentElement.remove();
          if (observer) observer.disconnect();
        } else {
          more.href = "?cursor=" + encodeURIComponent(cursor) + (list.dataset.filter || "");
          more.textContent = "Load more images";
        }
      } catch (err) {
        more.textContent = "Load more images";
        if (status) status.textContent = err.message;
      } finally {
        busy = false;
        more.removeAttribute("aria-busy");
      }
      // A tall screen may still show the button: keep going until it is off screen.
      if (cursor && isVisible(more)) loadMore();
    }

    // Within the observer's 200px margin counts as visible: the observer only fires on a
    // change, so a button that stays inside the margin after a load must be followed here.
    const isVisible = (node) => {
      const box = node.getBoundingClientRect();
      return box.top < window.innerHeight + 200 && box.bottom > -200;
    };

    more.addEventListener("click", (event) => { event.preventDefault(); loadMore(); });
    let observer = null;
    if ("IntersectionObserver" in window) {
      observer = new IntersectionObserver((entries) => {
        if (entries.some((entry) => entry.isIntersecting)) loadMore();
      }, { rootMargin: "200px" });
      observer.observe(more);
    }
  }

  // Upload: drag and drop or pick several files; one progress bar per file, one request per
  // file up to 8 MiB and resumable (tus) chunks past that.
  function upload() {
    const form = document.getElementById("upload-form");
    if (!form) return;
    const input = document.getElementById("files");
    const zone = document.getElementById("dropzone");
    const list = document.getElementById("uploads");
    const endpoint = form.dataset.endpoint;
    const maxBytes = Number(form.dataset.maxBytes);
    const imageBase = form.dataset.imageBase;
    const resumableEndpoint = form.dataset.resumableEndpoint;
    const maxResumable = Number(form.dataset.maxResumableBytes);
    // Files over 8 MiB (or over the one-request limit) go up with tus in 4 MiB chunks.
    const RESUMABLE_OVER = 8 * 1024 * 1024;
    const CHUNK = 4 * 1024 * 1024;
    const resumable = (file) => file.size > RESUMABLE_OVER || (maxBytes && file.size > maxBytes);
    const queue = [];
    let running = 0;
    const PARALLEL = 3;

    const pump = () => {
      while (running < PARALLEL && queue.length) {
        running += 1;
        send(queue.shift()).finally(() => { running -= 1; pump(); });
      }
    };

    const add = (files) => {
      for (const file of files) {
        const bar = el("progress", { max: "100", value: "0",
          "aria-label": "Upload progress of " + file.name });
        const status = el("span", { class: "status", text: "Waiting…" });
        const item = el("li", { class: "upload-item" },
          el("div", { class: "top" },
            el("span", { class: "fname", text: file.name }),
            el("span", { class: "muted", text: humanSize(file.size) })),
          bar, status);
        list.prepend(item);
        const limit = resumable(file) ? maxResumable : maxBytes;
        if (limit && file.size > limit) {
          fail(item, bar, status, "The file is larger than the " + humanSize(limit) +
            " limit.");
          continue;
        }
        queue.push({ file, item, bar, status });
      }
      pump();
    };

    const fail = (item, bar, status, message) => {
      item.classList.add("failed");
      bar.value = 0;
      bar.hidden = true;
      status.textContent = "Not uploaded: " + message;
      status.setAttribute("role", "alert");
    };

    const uploaded = (item, bar, status, image) => {
      bar.value = 100;
      item.classList.add("done");
      item.dataset.imageId = image.id;
      status.textContent = "Uploaded · " + image.width + " × " + image.height + " · ";
      status.append(el("a", { href: imageBase + encodeURIComponent(image.id),
        text: "View image" }));
    };

    const send = (job) => (resumable(job.file) ? sendResumable(job) : sendWhole(job));

    // tus (tus-js-client, served from this site): after a dropped connection it asks the
    // server where the upload stands and goes on from there; the bar follows the bytes sent.
    const sendResumable = (job) => new Promise((resolve) => {
      const { file, item, bar, status } = job;
      if (!window.tus || !window.tus.isSupported) {
        fail(item, bar, status, "This browser cannot send large files in chunks.");
        resolve();
        return;
      }
      let imageId = null;
      status.textContent = "Uploading…";
      const upload = new window.tus.Upload(file, {
        endpoint: resumableEndpoint,
        chunkSize: CHUNK,
        retryDelays: [0, 1000, 2000, 4000, 8000, 15000, 30000],
        metadata: { filename: file.name },
        headers: { "X-CSRF-Token": csrf() },
        removeFingerprintOnSuccess: true,
        onProgress: (sent, total) => {
          const percent = Math.min(99, Math.floor((sent / total) * 100));
          bar.value = percent;
          // The last chunk's answer waits for the server's checks on the whole image.
          status.textContent = sent >= total ? "Checking the image…" : "Uploading… " + percent + "%";
        },
        onAfterResponse: (req, res) => {
          const id = res.getHeader("Chitram-Image-Id");
          if (id) imageId = id;
        },
        onError: (error) => {
          const res = error.originalResponse;
          fail(item, bar, status, errorMessage(res ? res.getStatus() : 0, res ? res.getBody() : ""));
          resolve();
        },
        onSuccess: async () => {
          try {
            const resp = await fetch("/api/v1/images/" + encodeURIComponent(imageId),
              { headers: { Accept: "application/json" }, credentials: "same-origin" });
            if (!resp.ok) throw new Error("HTTP " + resp.status);
            uploaded(item, bar, status, await resp.json());
          } catch (err) {
            fail(item, bar, status, errorMessage(0, ""));
          }
          resolve();
        },
      });
      upload.findPreviousUploads().then((previous) => {
        if (previous.length) upload.resumeFromPreviousUpload(previous[0]);
        upload.start();
      });
    });

    const sendWhole = (job) => new Promise((resolve) => {
      const { file, item, bar, status } = job;
      const xhr = new XMLHttpRequest();
      const body = new FormData();
      body.append("file", file, file.name);
      xhr.open("POST", endpoint);
      xhr.setRequestHeader("X-CSRF-Token", csrf());
      xhr.setRequestHeader("Accept", "application/json");
      status.textContent = "Uploading…";
      xhr.upload.addEventListener("progress", (event) => {
        if (!event.lengthComputable) return;
        const percent = Math.round((event.loaded / event.total) * 100);
        bar.value = percent;
        status.textContent = "Uploading… " + percent + "%";
      });
      xhr.addEventListener("load", () => {
        if (xhr.status === 201) {
          uploaded(item, bar, status, JSON.parse(xhr.responseText));
        } else {
          fail(item, bar, status, errorMessage(xhr.status, xhr.responseText));
        }
        resolve();
      });
      xhr.addEventListener("error", () => { fail(item, bar, status, errorMessage(0, "")); resolve(); });
      xhr.addEventListener("abort", () => { fail(item, bar, status, "Cancelled."); resolve(); });
      xhr.send(body);
    });

    input.addEventListener("change", () => { add([...input.files]); input.value = ""; });

    // From a link: the server fetches the image; one list item per link, like a file's.
    const linkForm = document.getElementById("link-form");
    if (linkForm) {
      const linkInput = document.getElementById("link-url");
      linkForm.addEventListener("submit", (event) => {
        event.preventDefault();
        const url = linkInput.value.trim();
        if (!url) return;
        const bar = el("progress", { "aria-label": "Fetching " + url });
        const status = el("span", { class: "status", text: "Fetching…" });
        const item = el("li", { class: "upload-item" },
          el("div", { class: "top" }, el("span", { class: "fname", text: url })), bar, status);
        list.prepend(item);
        linkInput.value = "";
        fetch(linkForm.dataset.endpoint, {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", "Accept": "application/json",
            "X-CSRF-Token": csrf() },
          body: JSON.stringify({ url }),
        }).then(async (response) => {
          const text = await response.text();
          if (response.status === 201) {
            const image = JSON.parse(text);
            bar.max = 100;
            bar.value = 100;
            item.classList.add("done");
            item.dataset.imageId = image.id;
            status.textContent = "Uploaded · " + image.width + " × " + image.height + " · ";
            status.append(el("a", { href: imageBase + encodeURIComponent(image.id),
              text: "View image" }));
          } else {
            fail(item, bar, status, errorMessage(response.status, text));
          }
        }, () => fail(item, bar, status, errorMessage(0, "")));
      });
    }
    for (const type of ["dragenter", "dragover"]) {
      zone.addEventListener(type, (event) => {
        event.preventDefault();
        event.dataTransfer.dropEffect = "copy";
        zone.classList.add("over");
      });
    }
    for (const type of ["dragleave", "dragend"]) {
      zone.addEventListener(type, () => zone.classList.remove("over"));
    }
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      if (event.dataTransfer && event.dataTransfer.files.length) add([...event.dataTransfer.files]);
    });
    // Files dropped next to the zone should not make the browser navigate away.
    window.addEventListener("dragover", (event) => event.preventDefault());
    window.addEventListener("drop", (event) => event.preventDefault());
  }

  // Image page: copy links, and delete behind a confirmation dialog.
  function imagePage() {
    const status = document.getElementById("copy-status");
    // Without a configured public URL the server writes relative links (it never trusts the
    // Host header); the browser knows the address it reached us at: show and copy that.
    for (const button of document.querySelectorAll("button[data-copy]")) {
      const field = document.getElementById(button.dataset.copy);
      if (field && field.value.startsWith("/")) field.value = new URL(field.value, location.href).href;
    }
    for (const button of document.querySelectorAll("button[data-copy]")) {
      button.addEventListener("click", async () => {
        const field = document.getElementById(button.dataset.copy);
        let ok = false;
        try {
          await navigator.clipboard.writeText(field.value);
          ok = true;
        } catch (e) {
          field.select();
          try { ok = document.execCommand("copy"); } catch (e2) { ok = false; }
        }
        if (status) status.textContent = ok ? "Link copied." : "Press Ctrl+C to copy the link.";
        if (!ok) { field.focus(); field.select(); }
      });
    }
    const open = document.getElementById("delete-open");
    const dialog = document.getElementById("delete-dialog");
    if (open && dialog && typeof dialog.showModal === "function") {
      open.addEventListener("click", (event) => {
        event.preventDefault();
        dialog.showModal();
        document.getElementById("delete-cancel").focus();
      });
      document.getElementById("delete-cancel").addEventListener("click", () => {
        dialog.close();
        open.focus();
      });
    }
  }

  const start = () => {
    localizeTimes(document);
    gallery();
    upload();
    imagePage();
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
