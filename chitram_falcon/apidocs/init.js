// Starts Swagger UI on /openapi.json (a file, not inline script: the page's CSP allows
// scripts from this server only). No validator badge: it would call an outside service.
window.addEventListener("DOMContentLoaded", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    tryItOutEnabled: false,
  });
});
