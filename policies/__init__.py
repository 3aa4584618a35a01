"""安居助手's own Rasa graph components, referenced from config.yml by module path."""
