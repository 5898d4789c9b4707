"""Tests against a real server: werkzeug in a thread, gunicorn, curl, Node, and a Redis of their own."""
