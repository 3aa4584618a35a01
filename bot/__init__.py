"""安居助手's own package. At its root the domain core (settings, database, repository, rules, knowledge, privacy,
identity, text normalization, tickets, importer, staff accounts, FAQ search), which imports no framework; the doors
sit above it in bot.clients, bot.staff and bot.web (and actions/, policies/). `make layers` checks the imports."""
