# %% [markdown]
# # speechlm: the Python API in five cells
#
# Run as a script (`.venv/bin/python scripts/example_api.py`) or cell by cell in an editor that
# understands `# %%` (VS Code, Jupyter via jupytext). Everything is offline and runs on a CPU.

# %%
from pathlib import Path

from speechlm import SpeechLM
from speechlm.audio import save_audio

out_dir = Path("outputs/example")
m = SpeechLM.load()  # the bundled default: mfcc-k100 tokenizer + unit-lm + unit-vocoder
print("unit space:", m.unit_space, "| frame rate:", m.frame_rate, "Hz")

# %% Speech -> units (deduplicated, with the frames each unit lasted)
prompt = "samples/flite_slt_arctic_a0004.wav"
units = m.tokenize(prompt)
print(len(units), "units for", round(units.seconds, 2), "s:", units.ids[:20].tolist(), "...")

# %% Units -> speech: resynthesis in the same voice, and in another voice
save_audio(out_dir / "resynth.wav", m.vocode(units, voice=prompt))
save_audio(out_dir / "converted.wav", m.vocode(units, voice="samples/fest_kal_arctic_a0004.wav"))

# %% Continue the prompt: three samples, each reproducible from its seed
outs = m.continue_audio(prompt, seconds=5, temperature=0.8, num_samples=3, seed=1)
for i, o in enumerate(outs, 1):
    save_audio(out_dir / f"continued-{i}.wav", o.waveform, o.sample_rate)
    print(f"sample {i} (seed {o.seed}): {o.seconds:.2f} s, continuation from "
          f"{o.prompt_seconds:.2f} s, {len(o.generated_units)} new units")

# %% Same seed, same audio (bit for bit on one machine)
again = m.continue_audio(prompt, seconds=5, temperature=0.8, seed=1)
assert (again.waveform == outs[0].waveform).all()
print("wrote", sorted(p.name for p in out_dir.iterdir()))
