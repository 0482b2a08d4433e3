"""speechlm: textless spoken language modelling (speech -> units -> unit LM -> speech).

Public API (imported lazily, so ``import speechlm`` is cheap and does nothing)::

    from speechlm import SpeechLM
    m = SpeechLM.load()                              # bundled default: tokenizer + LM + vocoder
    units = m.tokenize("in.wav")                     # Units(ids=[T], durations=[T], ...)
    out = m.continue_audio("prompt.wav", seconds=5, temperature=0.8, seed=1)
    out.waveform, out.prompt_units, out.generated_units
    wav = m.vocode(units, voice="ref.wav")

    from speechlm import Tokenizer, Vocoder          # single stages
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Continuation", "SpeechLM", "SpeechLMError", "Tokenizer", "Units", "Vocoder",
           "__version__"]


def __getattr__(name: str):
    if name == "Tokenizer":
        from speechlm.tokenizer import Tokenizer

        return Tokenizer
    if name == "Units":
        from speechlm.units import Units

        return Units
    if name in ("SpeechLM", "Continuation"):
        from speechlm import pipeline

        return getattr(pipeline, name)
    if name == "Vocoder":
        from speechlm.vocoder import Vocoder

        return Vocoder
    if name == "SpeechLMError":
        from speechlm.errors import SpeechLMError

        return SpeechLMError
    raise AttributeError(f"module 'speechlm' has no attribute {name!r}")
