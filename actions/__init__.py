"""Custom actions for 安居助手, discovered by rasa-sdk as a package (`rasa run actions --actions actions`)."""

from bot.privacy import install_log_masking

# the action server imports this package after setting up its logging: mask personal numbers from here on
install_log_masking()
