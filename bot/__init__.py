"""安居助手's gateway and the settings every part of the project reads."""
