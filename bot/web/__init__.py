"""The gateway: the resident doors on the web (chat page, kiosk, JSON API, WeChat) and the app that mounts the staff
console. `python -m bot.web` serves it; the only part that faces the network."""
