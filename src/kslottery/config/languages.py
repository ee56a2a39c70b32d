"""The languages a pair may name: ISO 639-1 code -> the name the prompt template uses."""

LANGUAGE_NAMES = {
    "en": "English",
    "ca": "Catalan",
    "es": "Spanish",
    "de": "German",
    "ro": "Romanian",
    "fr": "French",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
    "pl": "Polish",
    "cs": "Czech",
    "ru": "Russian",
    "zh": "Chinese",
    "ja": "Japanese",
}
