"""Thin Telegram adapters: parse the update, call a service, render a reply."""
