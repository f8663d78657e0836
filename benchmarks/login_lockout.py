"""Can others' wrong passwords lock a user out of ``chitram serve``?

Method
------
1. ``chitram serve`` (as installed, access line on) starts in an empty temporary folder with
   the default sign-in limits (``CHITRAM_AUTH_RATE_LIMIT=10/minute``,
   ``CHITRAM_LOGIN_GUARD=20/15minute``) and ``CHITRAM_TRUSTED_PROXIES=127.0.0.1``, so each
   request's ``X-Forwarded-For`` is its client address, as behind a reverse proxy.
2. The victim registers. Attackers then send ``--attempts`` wrong passwords for the victim's email
   (default 300), each from its own address (``203.0.113.x``/``198.18.x.x``), 8 at a time. Every
   25th attempt the victim signs in with the right password from their own address.
3. One guessing address then keeps guessing until refused, to show what the guard leaves it.
4. Reported: the victim's answers (all must be 200), the attackers' answers by status, and how
   many guesses the persistent address got before its first 429.

Run: ``python benchmarks/login_lockout.py`` (about half a minute on 2 cores; argon2 hashing is
most of it). Before the change, the victim's right password was 429 after 10 attackers' tries.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from _common import free_port, stop, wait_for

VICTIM = {"email": "victim@example.com", "password": "violet tractor minus 7"}


def address(i: int) -> str:
    return f"203.0.113.{i % 250 + 1}" if i < 250 else f"198.18.{i // 250}.{i % 250 + 1}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHITRAM_")}
        env.update(CHITRAM_TRUSTED_PROXIES="127.0.0.1", CHITRAM_UPLOAD_RATE_LIMIT="off")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "chitram_falcon", "serve", "--port", str(port)],
            cwd=Path(tmp),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(f"{base}/health/live", server)
            with httpx.Client(base_url=base, timeout=120) as client:
                victim_ip = {"X-Forwarded-For": "192.0.2.10"}
                client.post("/api/v1/auth/register", json=VICTIM, headers=victim_ip)

                def attack(i: int) -> int:
                    wrong = {"email": VICTIM["email"], "password": f"guess number {i}"}
                    headers = {"X-Forwarded-For": address(i)}
                    return client.post(
                        "/api/v1/auth/login", json=wrong, headers=headers
                    ).status_code

                victim: Counter[int] = Counter()
                attackers: Counter[int] = Counter()
                with ThreadPoolExecutor(8) as pool:
                    for start in range(0, args.attempts, 25):
                        batch = range(start, min(start + 25, args.attempts))
                        attackers.update(pool.map(attack, batch))
                        resp = client.post("/api/v1/auth/login", json=VICTIM, headers=victim_ip)
                        victim[resp.status_code] += 1
                persistent = {"X-Forwarded-For": "203.0.113.1"}
                guesses = 0
                while guesses < 50:
                    wrong = {"email": VICTIM["email"], "password": "one more guess"}
                    resp = client.post("/api/v1/auth/login", json=wrong, headers=persistent)
                    if resp.status_code == 429:
                        break
                    guesses += 1
        finally:
            stop(server)
    print(f"load average: {os.getloadavg()[0]:.1f}, CPUs: {os.cpu_count()}")
    print(f"victim's sign-ins with the right password: {dict(victim)}")
    print(f"attackers' wrong passwords ({args.attempts} addresses): {dict(attackers)}")
    print(f"a guessing address under attack got {guesses} more guesses before its 429")
    if set(victim) != {200}:
        raise SystemExit("the victim was locked out")


if __name__ == "__main__":
    main()
