"""Clients of the services the doors talk to: the Rasa server (REST channel) and WeChat (protocol and service API)."""
