"""Cluster Bot: a Telegram bot for the cluster development approach for MSMEs."""
