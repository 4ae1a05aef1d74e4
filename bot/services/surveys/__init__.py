"""Surveys as data: the definition model, its loaders (YAML, XLSForm), the expression evaluator
and the engine that walks a definition. Nothing here knows about Telegram."""
