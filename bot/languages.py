"""The shipped languages, in the order the language picker shows them.

Names are written in their own script so that a user who cannot read English still finds theirs.
"""

LANGUAGES: dict[str, str] = {
    "en": "English",
    "hi": "हिन्दी",
    "bn": "বাংলা",
    "mr": "मराठी",
    "te": "తెలుగు",
    "ta": "தமிழ்",
    "gu": "ગુજરાતી",
    "kn": "ಕನ್ನಡ",
    "ml": "മലയാളം",
    "pa": "ਪੰਜਾਬੀ",
}


def shipped(code: str | None) -> str | None:
    """The shipped language for a Telegram ``language_code`` such as ``hi-IN``, or None."""
    if not code:
        return None
    base = code.replace("_", "-").split("-")[0].lower()
    return base if base in LANGUAGES else None
