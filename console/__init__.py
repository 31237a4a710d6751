"""The dock console: web pages for the people who run docks and handle footage (technicians,
supervisors, investigators, auditors), with named accounts and roles, the firewall for
sensitive recordings, retention and legal hold, and health for operators.

It sits above the dock (``dock/``): it reads the dock's store and writes custody events
through it, and the dock never imports it. ``console.core.Console`` is one console over one
``dock.instance.Dock``; ``console.app.create_console_app`` turns it into an ASGI app.
"""
