"""Custom actions for 安居助手, discovered by rasa-sdk as a package (`rasa run actions --actions actions`)."""
