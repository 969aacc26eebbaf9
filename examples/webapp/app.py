"""A shop on session-store: log in, fill a cart, log out, served by any number of processes.

Run two processes that share one Redis; a browser sees one session on both::

    SESSION_STORE_URL=redis://127.0.0.1:6379/0?prefix=shop: python examples/webapp/app.py 8001
    SESSION_STORE_URL=redis://127.0.0.1:6379/0?prefix=shop: python examples/webapp/app.py 8002

Flask's ``session`` is server-side through ``session_store.flask``: the cookie is a random id,
login moves the session to a new id, logout deletes it.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta

from flask import Flask, redirect, render_template_string, request, session
from werkzeug.wrappers import Response

from session_store.flask import SessionStoreInterface, regenerate
from session_store.urls import redact_url

PAGE = """<!doctype html>
<html><head><title>session-store shop</title>
<style>
 body { font-family: sans-serif; max-width: 34em; margin: 2em auto; color: #222; }
 .who { padding: .6em 1em; border-radius: 6px; background: #eef5ff; }
 .port { color: #777; font-size: .9em; }
 form { margin: .8em 0; } input, button { font-size: 1em; padding: .25em .6em; }
 li { margin: .2em 0; }
</style></head>
<body>
<h1>session-store shop</h1>
<p class="port">served by process on port <b id="port">{{ port }}</b></p>
{% if user %}
  <p class="who" id="status">Logged in as <b id="user">{{ user }}</b></p>
  <form method="post" action="/cart"><input name="item" id="item" placeholder="item">
    <button id="add">Add to cart</button></form>
  <form method="post" action="/logout"><button id="logout">Log out</button></form>
{% else %}
  <p class="who" id="status">Not logged in</p>
  <form method="post" action="/login"><input name="user" id="name" placeholder="name">
    <button id="login">Log in</button></form>
{% endif %}
<h2>Cart</h2>
<ul id="cart">{% for item in cart %}<li>{{ item }}</li>
{% else %}<li><i>empty</i></li>{% endfor %}</ul>
</body></html>"""


def create_app(port: int) -> Flask:
    """The shop; the store comes from ``SESSION_STORE_URL``."""
    app = Flask(__name__)
    app.config["SESSION_STORE_URL"] = os.environ.get("SESSION_STORE_URL", "memory://")
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=1)
    SessionStoreInterface.init_app(app)

    @app.get("/")
    def index() -> str:
        return render_template_string(
            PAGE, port=port, user=session.get("user"), cart=session.get("cart", [])
        )

    @app.post("/login")
    def login() -> Response:
        regenerate()  # a new session id on login: no fixation
        session["user"] = request.form["user"].strip() or "guest"
        return redirect("/")

    @app.post("/cart")
    def add() -> Response:
        if session.get("user") and request.form.get("item"):
            session["cart"] = [*session.get("cart", []), request.form["item"]]
        return redirect("/")

    @app.post("/logout")
    def logout() -> Response:
        session.clear()  # deleted server-side: every process sees it gone
        return redirect("/")

    return app


def store_notice(url: str | None) -> str:
    """The line the shop prints at start: where its sessions live, and, without
    ``SESSION_STORE_URL``, that two processes will not share them (each has its own memory)."""
    if not url:
        return (
            "sessions in this process's memory (SESSION_STORE_URL is not set): a second process "
            "will not see them; set SESSION_STORE_URL=redis://127.0.0.1:6379/0?prefix=shop: "
            "to share them"
        )
    return f"sessions in {redact_url(url)}"


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    print(store_notice(os.environ.get("SESSION_STORE_URL")), file=sys.stderr, flush=True)
    create_app(port).run(host="127.0.0.1", port=port, threaded=True)
