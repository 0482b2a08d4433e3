"""speechlm: textless spoken language modelling (speech -> units -> unit LM -> speech).

Public API (imported lazily, so ``import speechlm`` is cheap and does nothing)::

    from speechlm import Tokenizer, Units
    tok = Tokenizer.load()                 # bundled default: MFCC + k-means, K=100
    units = tok("speech.wav", dedup=True)  # Units(ids=[T], durations=[T], ...)
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["SpeechLMError", "Tokenizer", "Units", "__version__"]


def __getattr__(name: str):
    if name == "Tokenizer":
        from speechlm.tokenizer import Tokenizer

        return Tokenizer
    if name == "Units":
        from speechlm.types import Units

        return Units
    if name == "SpeechLMError":
        from speechlm.errors import SpeechLMError

        return SpeechLMError
    raise AttributeError(f"module 'speechlm' has no attribute {name!r}")
