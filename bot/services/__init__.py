"""Domain logic: plain async functions, session first, keyword-only, no Telegram imports."""
