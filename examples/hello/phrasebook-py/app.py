"""The hello phrasebook written in Python (componentize-py): the same
`hello:app/phrasebook` interface as the Rust phrasebook, plus Italian. The
host only sees WIT: the Rust greeter links to it like to the Rust one."""

from typing import List, Optional

import wit_world
from wit_world.exports import phrasebook

TEMPLATES = {
    "de": "Hallo, {name}!",
    "en": "Hello, {name}!",
    "es": "¡Hola, {name}!",
    "fr": "Bonjour, {name} !",
    "it": "Ciao, {name}!",
}


class Phrasebook(wit_world.exports.Phrasebook):
    def phrase(self, language: Optional[str]) -> Optional[phrasebook.PhraseEntry]:
        language = language or "en"
        template = TEMPLATES.get(language)
        if template is None:
            return None
        return phrasebook.PhraseEntry(language=language, template=template)

    def languages(self) -> List[str]:
        return sorted(TEMPLATES)
