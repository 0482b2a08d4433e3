"""The vocoder judging scripts (``scripts/*_reports.sh`` over ``scripts/lib/heldout_reports.sh``)
run against a stand-in ``speechlm`` that logs its arguments and writes the reports it is asked
for: each script judges the vocoder copies it makes, every paired comparison reads reports that
exist by then, a rerun judges nothing again, and ``vocoder_copy`` really saves the bundled
vocoder with the settings it is given."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = ("timbre", "contrast", "voiced_noise", "voice_adapt")

FAKE_SL = """#!/usr/bin/env bash
# stand-in for speechlm: log the call; a comparison needs its two reports; a report is written
echo "SL $*" >> "$FAKE_LOG"
args=("$@")
if [[ "$2" == compare-* ]]; then
  for f in "$3" "$4"; do [ -f "$f" ] || { echo "missing $f" >&2; exit 2; }; done
fi
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in --json|--markdown) mkdir -p "$(dirname "${args[$((i + 1))]}")"
    echo '{}' > "${args[$((i + 1))]}";; esac
done
"""

FAKE_PY = """#!/usr/bin/env bash
echo "PY $*" >> "$FAKE_LOG"
cat > /dev/null
"""


def _tree(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "repo"
    shutil.copytree(REPO / "scripts", root / "scripts")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("speechlm", FAKE_SL), ("python", FAKE_PY)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "SL": str(bin_dir / "speechlm"), "PY": str(bin_dir / "python"),
           "FAKE_LOG": str(tmp_path / "log")}
    return root, env


def _run(root: Path, env: dict[str, str], script: str) -> list[list[str]]:
    log = Path(env["FAKE_LOG"])
    log.write_text("")
    proc = subprocess.run(["bash", str(root / "scripts" / f"{script}_reports.sh")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [shlex.split(line) for line in log.read_text().splitlines()]


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_report_script_judges_its_copies_then_pairs_them_and_resumes(tmp_path, script):
    root, env = _tree(tmp_path)
    calls = _run(root, env, script)
    copies = [c[2] for c in calls if c[0] == "PY"]
    evals = [c for c in calls if c[:2] == ["SL", "eval"]]
    judged = {c[c.index("--vocoder") + 1] for c in evals if c[2] in ("resynth", "continue")}
    assert copies and set(copies) <= judged  # every copy made is judged
    assert all(c[c.index("--data") + 1] == "heldout" for c in evals
               if c[2] in ("resynth", "continue"))  # on voices no model heard
    compares = [c for c in evals if c[2].startswith("compare-")]
    assert compares and all((root / c[3]).is_file() and (root / c[4]).is_file()
                            for c in compares)
    assert {c[c.index("--json") + 1] for c in evals} <= \
        {str(p.relative_to(root)) for p in root.glob("docs/**/*.json")}
    # every report exists: only the script's own comparisons rerun (not a prerequisite script)
    again = [c for c in _run(root, env, script) if c[:2] == ["SL", "eval"]]
    assert again and again == compares[-len(again):]


def test_voice_adapt_copies_carry_the_settings_of_their_time(tmp_path):
    root, env = _tree(tmp_path)
    calls = _run(root, env, "voice_adapt")
    assert [c[2:] for c in calls if c[0] == "PY"] == [
        ["outputs/voice-adapt-eval/vocoder-0", "0.5", "1.2", "1000", "0"],
        ["outputs/voice-adapt-eval/vocoder-20", "0.5", "1.2", "1000", "20"]]


@pytest.mark.parametrize("script,setting,values,ref,method", [
    ("f0_spread", "f0_spread", ["1", "0.5", "0"], "1", "hn"),
    ("source_f0", "source_f0_weight", ["0", "0.5", "1"], "0", "hn-f0")])
def test_a_setting_script_chooses_on_valid_then_judges_once_held_out(tmp_path, script, setting,
                                                                      values, ref, method):
    """scripts/vocoder_setting_reports.sh through its two wrappers: one copy per value, each
    judged on the valid subset and paired with the reference value's report; the held-out
    engines only for CHOSEN, paired with the bundle's own report."""
    root, env = _tree(tmp_path)
    sub = root / "outputs" / "f0-spread-eval"
    sub.mkdir(parents=True)
    (sub / "valid40.tsv").write_text("/corpus\n")
    (sub / "valid40.wrd").write_text("")
    (root / "docs").mkdir()
    (root / "docs" / "switch-vocoder-new-b6400r-heldout.json").write_text("{}")
    calls = _run(root, env, script)
    assert [c[3:] for c in calls if c[0] == "PY"] == [[setting, v, "phone-vocoder", "speaker."]
                                                      for v in values]
    evals = [c for c in calls if c[:2] == ["SL", "eval"]]
    judged = [c for c in evals if c[2] == "resynth"]
    assert len(judged) == len(values)
    assert all(c[c.index("--data") + 1] == "outputs/f0-spread-eval/valid40.tsv" and
               c[c.index("--methods") + 1] == method for c in judged)
    stem = script.replace("_", "-")
    assert [c[3:5] for c in evals if c[2] == "compare-resynth"] == [
        [f"docs/vocoder-{stem}-valid-{ref}.json", f"docs/vocoder-{stem}-valid-{v}.json"]
        for v in values if v != ref]
    calls = _run(root, {**env, "CHOSEN": values[-1]}, script)
    held = [c for c in calls if c[:3] == ["SL", "eval", "resynth"]]
    assert len(held) == 1 and held[0][held[0].index("--data") + 1] == "heldout"
    assert held[0][held[0].index("--methods") + 1] == method
    assert [c[3:5] for c in calls if c[:3] == ["SL", "eval", "compare-resynth"]][-1] == [
        "docs/switch-vocoder-new-b6400r-heldout.json",
        f"docs/vocoder-{stem}-{values[-1]}-heldout.json"]


def test_speeds_script_chooses_on_valid_then_judges_once_on_both_voices_and_through_resynth(
        tmp_path):
    """scripts/speeds_reports.sh: one valid report over every set (paired with none); with
    CHOSEN, the tokenizer judged on seen and held-out voices and the bundled pipeline's
    resynthesis on the held-out engines, paired with the bundle's own report."""
    root, env = _tree(tmp_path)
    (root / "docs").mkdir()
    (root / "docs" / "vocoder-source-f0-1-heldout.json").write_text("{}")
    calls = [c for c in _run(root, env, "speeds") if c[:2] == ["SL", "eval"]]
    assert len(calls) == 1 and calls[0][2] == "tokenizer"
    sets = [calls[0][i + 1] for i, a in enumerate(calls[0]) if a == "--speeds"]
    assert sets[0] == "none" and "0.85,1,1.15" in sets and len(sets) == 5
    assert calls[0][calls[0].index("--manifest") + 1] == "valid"
    calls = [c for c in _run(root, {**env, "CHOSEN": "0.85,1,1.15"}, "speeds")
             if c[:2] == ["SL", "eval"]]
    assert [c[2] for c in calls] == ["tokenizer", "resynth", "compare-resynth"]  # valid kept
    tok, res, cmp = calls
    assert [tok[i + 1] for i, a in enumerate(tok) if a == "--manifest"] == ["test", "heldout"]
    assert [tok[i + 1] for i, a in enumerate(tok) if a == "--speeds"] == ["none", "0.85,1,1.15"]
    assert res[res.index("--data") + 1] == "heldout" and res[res.index("--speeds") + 1] == \
        "0.85,1,1.15" and res[res.index("--vocoder") + 1] == "phone-vocoder"
    assert cmp[3:5] == ["docs/vocoder-source-f0-1-heldout.json",
                        "docs/vocoder-speeds-heldout.json"]
    # with phone-band2's tokenizer: the ensemble on it, then k-means refitted on the ensemble
    band2 = root / "outputs" / "tokenizers" / "phone-band2-k100"
    band2.mkdir(parents=True)
    (band2 / "config.json").write_text("{}")
    calls = [c for c in _run(root, {**env, "CHOSEN": "0.85,1,1.15"}, "speeds")
             if c[0] == "SL" and c[1] != "eval" or c[2] == "tokenizer"]
    assert [c[1:3] for c in calls] == [["eval", "tokenizer"], ["train", "tokenizer"],
                                      ["eval", "tokenizer"]]
    on, fit, both = calls
    assert on[on.index("--tokenizer") + 1] == "outputs/tokenizers/phone-band2-k100"
    assert fit[fit.index("--speeds") + 1] == "0.85,1,1.15" and \
        fit[fit.index("--out") + 1] == "outputs/tokenizers/phone-band2-e3-k100"
    assert [both[i + 1] for i, a in enumerate(both) if a == "--tokenizer"] == [
        "outputs/tokenizers/phone-band2-k100", "outputs/tokenizers/phone-band2-e3-k100"]


@pytest.mark.slow
def test_vocoder_copy_saves_the_bundled_vocoder_with_its_settings(tmp_path):
    from speechlm.vocoder import Vocoder

    out = tmp_path / "v"
    cmd = f". scripts/lib/heldout_reports.sh && vocoder_copy {shlex.quote(str(out))} 0.25 1.3 800 7"
    env = {**os.environ, "PY": sys.executable}
    subprocess.run(["bash", "-c", cmd], cwd=REPO, env=env, check=True, timeout=300)
    v = Vocoder.load(str(out))
    assert (v.timbre_match, v.mel_contrast, v.voiced_noise_cut, v.voice_adapt_steps) == \
        (0.25, 1.3, 800.0, 7)
    cmd = (". scripts/lib/heldout_reports.sh && "
           f"vocoder_with {shlex.quote(str(out))}-w f0_spread 0.25")
    subprocess.run(["bash", "-c", cmd], cwd=REPO, env=env, check=True, timeout=300)
    w = Vocoder.load(f"{out}-w")
    assert w.f0_spread == 0.25 and w.timbre_match == Vocoder.load("phone-vocoder").timbre_match
    # another bundle as the base, its blocks in int8 as it ships
    env = {**env, "VOCODER_BASE": "whisper-phone-vocoder",
           "VOCODER_INT8": "speaker. pre. post. duration.blocks."}
    cmd = (". scripts/lib/heldout_reports.sh && "
           f"vocoder_with {shlex.quote(str(out))}-x f0_spread 0")
    subprocess.run(["bash", "-c", cmd], cwd=REPO, env=env, check=True, timeout=300)
    x, base = Vocoder.load(f"{out}-x"), Vocoder.load("whisper-phone-vocoder")
    assert x.f0_spread == 0.0 and x.unit_space == base.unit_space
    cfg = json.loads((out.parent / "v-x" / "config.json").read_text())
    assert cfg["stored_dtype"] == "int8 (speaker., pre., post., duration.blocks.), float16"
    want = base.model.state_dict()
    assert all(torch.allclose(v, want[k], atol=1e-3) for k, v in x.model.state_dict().items())


def test_export_lm_half_ships_the_runs_weights_in_float16(tmp_path):
    """``export_lm_half`` (the default LM's and the switch's export): the run's model/ weights,
    stored in float16, loading to the same float32 model."""
    from safetensors.torch import load_file

    from speechlm import checkpoint
    from speechlm.lm import LanguageModel

    cfg, tensors, _ = checkpoint.load_stage(str(REPO / "speechlm/pretrained/phone-lm"), "lm")
    cfg.pop("kind"), cfg.pop("format_version"), cfg.pop("stored_dtype", None)
    checkpoint.save_stage(str(tmp_path / "run/model"), "lm", cfg,
                          {k: t.float() for k, t in tensors.items()})
    out = tmp_path / "lm"
    cmd = (". scripts/lib/heldout_reports.sh && export_lm_half "
           f"{shlex.quote(str(tmp_path / 'run'))} {shlex.quote(str(out))}")
    env = {**os.environ, "PY": sys.executable}
    subprocess.run(["bash", "-c", cmd], cwd=REPO, env=env, check=True, timeout=120,
                   capture_output=True)
    stored = load_file(str(out / "model.safetensors"))
    assert stored and {t.dtype for t in stored.values()} == {torch.float16}
    a = LanguageModel.load(str(REPO / "speechlm/pretrained/phone-lm"))
    b = LanguageModel.load(str(out))
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_drawn_voicing_sweep_refuses_bad_manifests_and_audio(tmp_path, capsys):
    """scripts/drawn_voicing_sweep.py: a missing or empty manifest, or a file that is not audio,
    is one line on stderr and exit 2, with no table written."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sweep", REPO / "scripts" /
                                                  "drawn_voicing_sweep.py")
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    out = tmp_path / "t.json"
    (tmp_path / "empty.tsv").write_text(f"{tmp_path}\n")
    for data in (tmp_path / "missing.tsv", tmp_path / "empty.tsv"):
        assert sweep.main(["--data", str(data), "--json", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert "not a manifest with utterances" in err and len(err.splitlines()) == 1
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    (tmp_path / "bad.tsv").write_text(f"{tmp_path}\nbad.wav\t16000\n")
    assert sweep.main(["--data", str(tmp_path / "bad.tsv"), "--json", str(out)]) == 2
    assert "not readable audio" in capsys.readouterr().err and not out.exists()


def _run_script(root: Path, env: dict[str, str], name: str) -> tuple[int, list[list[str]], str]:
    log = Path(env["FAKE_LOG"])
    log.write_text("")
    proc = subprocess.run(["bash", str(root / "scripts" / name)], env=env, capture_output=True,
                          text=True, timeout=60)
    return proc.returncode, [shlex.split(x) for x in log.read_text().splitlines()], proc.stderr


def _pairs(calls: list[list[str]]) -> list[list[str]]:
    """The (base, other) reports of each ``eval compare-resynth`` call, in order."""
    return [c[3:5] for c in calls if c[1:3] == ["eval", "compare-resynth"]]


def _touch(root: Path, *paths: str) -> None:
    """Create each ``root/PATH`` (and its folders) holding ``{}``: an input a script needs."""
    for f in paths:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_text("{}")


def _exported(parent: Path, *names: str) -> None:
    """Mark ``parent/NAME`` as finished (a ``config.json``, what the scripts test for)."""
    for name in names:
        (parent / name).mkdir(parents=True)
        (parent / name / "config.json").write_text("{}")


def test_vocoder_grow_trains_grown_and_control_then_pairs_them_and_resumes(tmp_path):
    """scripts/vocoder_grow.sh: the grown recipe and its control (the bundled block counts),
    each exported then judged on the held-out engines, grow paired with control and both with
    the bundle's report; a rerun after the exports trains nothing again."""
    root, env = _tree(tmp_path)
    (root / "docs").mkdir()
    (root / "docs" / "vocoder-source-f0-1-heldout.json").write_text("{}")
    rc, calls, err = _run_script(root, env, "vocoder_grow.sh")
    assert rc == 0, err
    trains = sorted((c for c in calls if c[1:3] == ["train", "vocoder"]), key=len)
    assert len(trains) == 2
    grow, control = trains
    assert grow[grow.index("--config") + 1] == "configs/vocoder/phone-cpu-grow.toml"
    assert "--train.out=outputs/vocoder-grow" in grow
    assert not any("blocks" in a for a in grow)
    assert {"--model.pre_blocks=3", "--model.post_blocks=5",
            "--train.out=outputs/vocoder-grow-control"} <= set(control)
    judged = [c for c in calls if c[1:3] == ["eval", "resynth"]]
    assert [c[c.index("--vocoder") + 1] for c in judged] == [
        "outputs/vocoder-grow-eval/grow", "outputs/vocoder-grow-eval/grow-control"]
    assert all(c[c.index("--data") + 1] == "heldout" for c in judged)
    pairs = _pairs(calls)
    assert pairs == [["docs/vocoder-grow-control-heldout.json", "docs/vocoder-grow-heldout.json"],
                     ["docs/vocoder-source-f0-1-heldout.json", "docs/vocoder-grow-heldout.json"],
                     ["docs/vocoder-source-f0-1-heldout.json",
                      "docs/vocoder-grow-control-heldout.json"]]
    _exported(root / "outputs" / "vocoder-grow-eval", "grow", "grow-control")
    rc, calls, err = _run_script(root, env, "vocoder_grow.sh")
    assert rc == 0, err
    assert [c[1:3] for c in calls if c[0] == "SL"] == [["eval", "compare-resynth"]] * 3


def test_mel_limit_judges_held_out_then_refuses_without_the_vocoders_cache(tmp_path):
    """scripts/mel_limit_reports.sh: the predicted and the original log-mel through both
    waveform methods on the held-out engines; the fit report needs the bundled vocoder's
    training cache (exit 2 and one line without it)."""
    root, env = _tree(tmp_path)
    rc, calls, err = _run_script(root, env, "mel_limit_reports.sh")
    assert rc == 2 and "training cache" in err and len(err.strip().splitlines()) == 1
    (held,) = [c for c in calls if c[0] == "SL"]
    assert held[held.index("--methods") + 1] == "hn-f0,griffinlim,copy-hn,copy-gl"
    assert held[held.index("--data") + 1] == "heldout"
    cache = root / "data" / "vocoder" / "v2-phone-k100-"  # the stand-in python prints no tag
    cache.mkdir(parents=True)
    (cache / "train.json").write_text("{}")
    rc, calls, err = _run_script(root, env, "mel_limit_reports.sh")
    assert rc == 0, err
    (fit,) = [c for c in calls if c[0] == "SL"]  # the held-out report is kept
    assert fit[fit.index("--data") + 1] == "outputs/mel-limit/fit.tsv"
    assert fit[fit.index("--methods") + 1] == "hn-f0,copy-gl"


def test_unit_oracle_judges_the_units_as_read_then_each_reading_paired_with_them(tmp_path):
    """scripts/unit_oracle_reports.sh: the same manifest and draw for all three reports (the
    units as read first), each oracle reading paired with them; a rerun judges nothing again."""
    root, env = _tree(tmp_path)
    rc, calls, err = _run_script(root, env, "unit_oracle_reports.sh")
    assert rc == 0, err
    judged = [c for c in calls if c[1:3] == ["eval", "resynth"]]
    assert len(judged) == 3
    assert {c[c.index("--data") + 1] for c in judged} == {"outputs/unit-oracle/heldout-aligned.tsv"}
    assert {c[c.index("--per-voice") + 1] for c in judged} == {"4"}
    assert ["--unit-oracle" in c for c in judged] == [False, True, True]
    assert [c[c.index("--unit-oracle") + 1] for c in judged[1:]] == ["corrected", "phones"]
    pairs = _pairs(calls)
    assert pairs == [["docs/unit-oracle-units-heldout.json",
                      "docs/unit-oracle-corrected-heldout.json"],
                     ["docs/unit-oracle-units-heldout.json",
                      "docs/unit-oracle-phones-heldout.json"]]
    rc, calls, err = _run_script(root, env, "unit_oracle_reports.sh")
    assert rc == 0 and not [c for c in calls if c[1:3] == ["eval", "resynth"]]


def test_unit_oracle_on_known_identities_with_one_reading(tmp_path):
    """SPLIT=test PER_VOICE=1 MODES=phones: the test split's aligned utterances, one per voice,
    the units as read and the phones alone, paired; the held-out reports' names untouched."""
    root, env = _tree(tmp_path)
    env = {**env, "SPLIT": "test", "PER_VOICE": "1", "MODES": "phones"}
    rc, calls, err = _run_script(root, env, "unit_oracle_reports.sh")
    assert rc == 0, err
    judged = [c for c in calls if c[1:3] == ["eval", "resynth"]]
    assert [c[c.index("--json") + 1] for c in judged] == ["docs/unit-oracle-units-test.json",
                                                          "docs/unit-oracle-phones-test.json"]
    assert {c[c.index("--data") + 1] for c in judged} == {"outputs/unit-oracle/test-aligned.tsv"}
    assert {c[c.index("--per-voice") + 1] for c in judged} == {"1"}
    (py,) = [c for c in calls if c[0] == "PY"]
    assert py[2:] == ["data/corpus-v2/test.tsv", "outputs/unit-oracle/test-aligned"]


def test_vocoder_adversarial_trains_two_weights_chooses_on_valid_then_pairs_held_out(tmp_path):
    """scripts/vocoder_adversarial.sh: two critic weights trained side by side on the
    adversarial recipe, make vocoder-grow's control copied (not retrained), all three judged on
    valid40 then the held-out engines, each weight paired with the control on both and with the
    bundle held out; a rerun after the exports trains and judges nothing again."""
    root, env = _tree(tmp_path)
    (root / "docs").mkdir()
    (root / "docs" / "vocoder-source-f0-1-heldout.json").write_text("{}")
    sub = root / "outputs" / "f0-spread-eval"
    sub.mkdir(parents=True)
    (sub / "valid40.tsv").write_text("/corpus\n")
    (sub / "valid40.wrd").write_text("")
    _exported(root / "outputs" / "vocoder-grow-eval", "grow-control")
    rc, calls, err = _run_script(root, env, "vocoder_adversarial.sh")
    assert rc == 0, err
    trains = sorted((c for c in calls if c[1:3] == ["train", "vocoder"]), key=lambda c: c[-1])
    assert len(trains) == 2  # the control is make vocoder-grow's
    assert all(c[c.index("--config") + 1] == "configs/vocoder/phone-cpu-adversarial.toml"
               for c in trains)
    assert {"--train.adversarial=0.1", "--train.feature_matching=1",
            "--train.out=outputs/vocoder-adv"} <= set(trains[0])
    assert {"--train.adversarial=0.5", "--train.feature_matching=5",
            "--train.out=outputs/vocoder-adv-strong"} <= set(trains[1])
    assert (root / "outputs" / "vocoder-adversarial-eval" / "grow-control" / "config.json").exists()
    judged = [(c[c.index("--vocoder") + 1].rsplit("/", 1)[1], c[c.index("--data") + 1])
              for c in calls if c[1:3] == ["eval", "resynth"]]
    valid = "outputs/f0-spread-eval/valid40.tsv"
    assert judged == [("grow-control", "heldout"), ("grow-control", valid), ("adv", valid),
                      ("adv-strong", valid), ("adv", "heldout"), ("adv-strong", "heldout")]
    pairs = _pairs(calls)
    assert pairs == [["docs/vocoder-grow-control-valid.json", "docs/vocoder-adv-valid.json"],
                     ["docs/vocoder-grow-control-valid.json", "docs/vocoder-adv-strong-valid.json"],
                     ["docs/vocoder-grow-control-heldout.json", "docs/vocoder-adv-heldout.json"],
                     ["docs/vocoder-source-f0-1-heldout.json", "docs/vocoder-adv-heldout.json"],
                     ["docs/vocoder-grow-control-heldout.json",
                      "docs/vocoder-adv-strong-heldout.json"],
                     ["docs/vocoder-source-f0-1-heldout.json",
                      "docs/vocoder-adv-strong-heldout.json"]]
    _exported(root / "outputs" / "vocoder-adversarial-eval", "adv", "adv-strong")
    rc, calls, err = _run_script(root, env, "vocoder_adversarial.sh")
    assert rc == 0, err
    assert [c[1:3] for c in calls if c[0] == "SL"] == [["eval", "compare-resynth"]] * 6


def test_unit_runs_refuses_without_the_aligned_manifest_then_judges_both_readings(tmp_path):
    """scripts/unit_runs_reports.sh: exit 2 naming make unit-oracle when its manifest is
    missing; then copy-hn, copy-runs and copy-unit-means on the held-out engines, on the
    aligned subset with the reference phones' runs, and with three other tokenizers' runs (two
    fitted first); a rerun fits and judges nothing again."""
    root, env = _tree(tmp_path)
    rc, calls, err = _run_script(root, env, "unit_runs_reports.sh")
    assert rc == 2 and "make unit-oracle" in err and not calls
    aligned = root / "outputs" / "unit-oracle"
    aligned.mkdir(parents=True)
    (aligned / "heldout-aligned.tsv").write_text("/corpus\n")
    rc, calls, err = _run_script(root, env, "unit_runs_reports.sh")
    assert rc == 0, err
    held, phones, *others = [c for c in calls if c[1:3] == ["eval", "resynth"]]
    assert held[held.index("--data") + 1] == "heldout"
    assert held[held.index("--methods") + 1] == "copy-hn,copy-runs,copy-unit-means"
    assert "--unit-oracle" not in held
    assert phones[phones.index("--data") + 1] == "outputs/unit-oracle/heldout-aligned.tsv"
    assert phones[phones.index("--unit-oracle") + 1] == "phones"
    assert phones[phones.index("--json") + 1] == "docs/vocoder-phone-runs-heldout.json"
    # other units: two codebooks fitted on the bundled encoder, and the former MFCC units
    fits = [c for c in calls if c[1:3] == ["train", "tokenizer"]]
    assert [c[c.index("--k") + 1] for c in fits] == ["500", "2000"]
    assert all(c[c.index("--band-limit") + 1] == "6400" for c in fits)
    assert [(c[c.index("--tokenizer") + 1], c[c.index("--methods") + 1]) for c in others] == [
        ("outputs/tokenizers/phone-k500-b6400", "copy-runs,copy-unit-means"),
        ("outputs/tokenizers/phone-k2000-b6400", "copy-runs,copy-unit-means"),
        ("mfcc-k100", "copy-runs,copy-unit-means")]
    assert others[-1][others[-1].index("--json") + 1] == \
        "docs/vocoder-unit-runs-mfcc-k100-heldout.json"
    # the fitted tokenizers are kept
    _exported(root / "outputs" / "tokenizers", "phone-k500-b6400", "phone-k2000-b6400")
    rc, calls, err = _run_script(root, env, "unit_runs_reports.sh")
    assert rc == 0 and not calls


def test_voice_lookup_judges_three_codebooks_pairs_the_finer_ones_then_the_phones(tmp_path):
    """scripts/voice_lookup_reports.sh: copy-voice-means / copy-voice-context with the bundled
    units and K = 500 / 2,000 codebooks (fitted when absent), each finer one paired with the
    bundled units; the phone tables only with make unit-oracle's manifest; a rerun judges
    nothing again."""
    root, env = _tree(tmp_path)
    rc, calls, err = _run_script(root, env, "voice_lookup_reports.sh")
    assert rc == 0, err
    assert "phone tables are skipped" in err
    judged = [c for c in calls if c[1:3] == ["eval", "resynth"]]
    assert all(c[c.index("--methods") + 1] == "copy-voice-means,copy-voice-context"
               for c in judged)
    assert [c[c.index("--tokenizer") + 1] if "--tokenizer" in c else None for c in judged] == [
        None, "outputs/tokenizers/phone-k500-b6400", "outputs/tokenizers/phone-k2000-b6400"]
    assert all(c[c.index("--data") + 1] == "heldout" for c in judged)
    fits = [c for c in calls if c[1:3] == ["train", "tokenizer"]]
    assert [c[c.index("--k") + 1] for c in fits] == ["500", "2000"]
    assert _pairs(calls) == [
        ["docs/vocoder-voice-lookup-heldout.json",
         f"docs/vocoder-voice-lookup-phone-k{k}-b6400-heldout.json"] for k in (500, 2000)]
    aligned = root / "outputs" / "unit-oracle"
    aligned.mkdir(parents=True)
    (aligned / "heldout-aligned.tsv").write_text("/corpus\n")
    _exported(root / "outputs" / "tokenizers", "phone-k500-b6400", "phone-k2000-b6400")
    rc, calls, err = _run_script(root, env, "voice_lookup_reports.sh")
    assert rc == 0, err
    (phones,) = [c for c in calls if c[1:3] == ["eval", "resynth"]]
    assert phones[phones.index("--unit-oracle") + 1] == "phones"
    assert phones[phones.index("--data") + 1] == "outputs/unit-oracle/heldout-aligned.tsv"
    assert not [c for c in calls if c[1:3] == ["train", "tokenizer"]]


def test_vocoder_overfit_refuses_without_mel_limit_then_trains_on_62_and_620_and_pairs(
        tmp_path):
    """scripts/vocoder_overfit.sh: exit 2 naming make mel-limit without its draw, and naming
    the bundled vocoder's cache without it; then two-split corpora (train: the 62, or 620 drawn
    around them; valid: valid40), the overfit recipe trained on each and exported, both judged
    on the 62 (with copy-hn), on the held-out engines and (with the bundle) on new sentences of
    the 62's voices, each paired with the bundle's report of the same utterances; a rerun
    trains and judges nothing again."""
    root, env = _tree(tmp_path)
    rc, calls, err = _run_script(root, env, "vocoder_overfit.sh")
    assert rc == 2 and "make mel-limit" in err and not calls
    fit = root / "outputs" / "mel-limit"
    fit.mkdir(parents=True)
    for x in ("tsv", "wrd", "spk"):
        (fit / f"fit.{x}").write_text(f"/corpus\nfit {x}\n")
    (root / "docs").mkdir()
    for stem in ("vocoder-mel-limit-fit", "vocoder-source-f0-1-heldout",
                 "vocoder-overfit-fit-l1"):
        (root / "docs" / f"{stem}.json").write_text("{}")
    rc, calls, err = _run_script(root, env, "vocoder_overfit.sh")
    assert rc == 2 and "training cache" in err
    cache = root / "data" / "vocoder" / "v2-phone-k100-"  # the stand-in python prints no tag
    cache.mkdir(parents=True)
    (cache / "train.json").write_text("{}")
    e = root / "outputs" / "vocoder-overfit-eval"
    e.mkdir(parents=True)
    for x in ("tsv", "wrd"):
        (e / f"valid40.{x}").write_text(f"valid {x}\n")
    rc, calls, err = _run_script(root, env, "vocoder_overfit.sh")
    assert rc == 0, err
    assert (e / "corpus" / "train.spk").read_text() == "/corpus\nfit spk\n"
    assert (e / "corpus620" / "valid.tsv").read_text() == "valid tsv\n"
    draw = [c for c in calls if c[0] == "PY" and c[-1].endswith("corpus620/train")]
    assert draw and draw[0][-3:-1] == ["data/vocoder/v2-phone-k100-/train.json",
                                       "outputs/mel-limit/fit.tsv"]
    trains = {c[-1]: c for c in calls if c[1:3] == ["train", "vocoder"]}  # by the last override
    assert sorted(trains) == ["--data.cache=data/vocoder/overfit620-phone-k100",
                              "--data.corpus=outputs/vocoder-overfit-eval/corpus"]
    for c in trains.values():
        assert c[c.index("--config") + 1] == "configs/vocoder/phone-cpu-overfit.toml"
    judged = [c for c in calls if c[1:3] == ["eval", "resynth"]]
    assert [(c[c.index("--vocoder") + 1].rsplit("/", 1)[-1], c[c.index("--data") + 1],
             c[c.index("--methods") + 1]) for c in judged] == [
        ("overfit", "outputs/mel-limit/fit.tsv", "hn-f0,copy-hn"),
        ("overfit620", "outputs/mel-limit/fit.tsv", "hn-f0,copy-hn"),
        ("overfit", "heldout", "hn-f0"), ("overfit620", "heldout", "hn-f0"),
        ("phone-vocoder", "outputs/vocoder-overfit-eval/voices-test.tsv", "hn-f0"),
        ("overfit", "outputs/vocoder-overfit-eval/voices-test.tsv", "hn-f0"),
        ("overfit620", "outputs/vocoder-overfit-eval/voices-test.tsv", "hn-f0")]
    pairs = _pairs(calls)
    assert pairs == [["docs/vocoder-mel-limit-fit.json", f"docs/vocoder-{n}-fit.json"]
                     for n in ("overfit", "overfit620")] + [
        ["docs/vocoder-source-f0-1-heldout.json", f"docs/vocoder-{n}-heldout.json"]
        for n in ("overfit", "overfit620")] + [
        ["docs/vocoder-overfit-voices-bundled-test.json", f"docs/vocoder-{n}-voices-test.json"]
        for n in ("overfit", "overfit620")]
    voices = [c for c in calls if c[0] == "PY" and c[-1].endswith("voices-test")]
    assert voices and voices[0][-2] == "outputs/mel-limit/fit.spk"
    _exported(e, "overfit", "overfit620")
    rc, calls, err = _run_script(root, env, "vocoder_overfit.sh")
    assert rc == 0, err
    assert not [c for c in calls if c[1:3] in (["train", "vocoder"], ["eval", "resynth"])]


def _heldout_cache(root: Path, space: str, tag: str) -> None:
    """A small held-out engines' cache of the bundled units where vocoder_losses looks for it."""
    from test_cache_pack import _cache

    src = _cache(root / "tmp-heldout", voices=("p", "q"), seed=5, unit_space=space,
                 tokenizer="phone-k100")
    d = root / "data" / "vocoder" / f"heldout-phone-k100-{tag}"
    d.mkdir(parents=True)
    for f in src.glob("train.*"):
        shutil.copy(f, d / f.name.replace("train.", "heldout."))


def _bundle_caches(root: Path) -> None:
    """What vocoder_losses reads in a script tree: the bundled vocoder's config (its unit space),
    small valid and held-out caches of the bundled units, and the recipes."""
    import json

    from test_cache_pack import _cache

    cfg = json.loads((REPO / "speechlm/pretrained/phone-vocoder/config.json").read_text())
    (root / "speechlm/pretrained/phone-vocoder").mkdir(parents=True)
    (root / "speechlm/pretrained/phone-vocoder/config.json").write_text(json.dumps(cfg))
    tag = cfg["unit_space"].rsplit("-", 1)[1]
    _cache(root / "data" / "vocoder" / f"v2-phone-k100-{tag}", unit_space=cfg["unit_space"],
           tokenizer="phone-k100")
    _heldout_cache(root, cfg["unit_space"], tag)
    shutil.copytree(REPO / "configs", root / "configs")


def test_gpu_vocoder_judge_scores_both_exports_then_judges_the_chosen_once(tmp_path):
    """scripts/gpu_vocoder_judge.sh on what the device script returns: both exports unpacked,
    the valid loss of the bundle and both on the same batches (real python: equal weights give
    equal losses), each judged on valid40 and paired with the bundle, then only CHOSEN on the
    held-out engines, paired with the bundle's report; a rerun judges nothing again; a
    directory without the exports is refused."""
    import json
    import tarfile

    from speechlm.vocoder import Vocoder

    root, env = _tree(tmp_path)
    _bundle_caches(root)
    sub = root / "outputs" / "f0-spread-eval"
    sub.mkdir(parents=True)
    (sub / "valid40.tsv").write_text("/corpus\n")
    (sub / "valid40.wrd").write_text("")
    got = tmp_path / "got"
    got.mkdir()
    v = Vocoder.load("phone-vocoder")
    for name in ("best", "last"):
        v.save(tmp_path / name, half=True, int8=("speaker.",))
        with tarfile.open(got / f"{name}.tar", "w") as t:
            t.add(tmp_path / name, arcname=name)
    (got / "log.jsonl").write_text('{"step": 1}\n')
    (got / "done.json").write_text("{}")
    env = {**env, "PY": sys.executable, "CHOSEN": "last", "PYTHONPATH": str(REPO)}

    def run(arg):
        Path(env["FAKE_LOG"]).write_text("")
        p = subprocess.run(["bash", str(root / "scripts" / "gpu_vocoder_judge.sh"), arg],
                           env=env, capture_output=True, text=True, timeout=300)
        return p, [shlex.split(x) for x in Path(env["FAKE_LOG"]).read_text().splitlines()]

    p, calls = run(str(got))
    assert p.returncode == 0, p.stderr[-3000:]
    loss = json.loads((root / "docs" / "vocoder-gpu-scale-valid-loss.json").read_text())["loss"]
    names = ["phone-vocoder", "outputs/vocoder-gpu-eval/best", "outputs/vocoder-gpu-eval/last"]
    assert list(loss) == names + ["phone-vocoder (units shuffled)"]
    floor = loss["phone-vocoder (units shuffled)"]
    # the trivial baseline decodes other input (random units here: no better or worse)
    assert floor["valid"]["mel"] != loss[names[0]]["valid"]["mel"]
    assert loss[names[0]]["valid"]["mel"] > 0 and loss[names[0]]["heldout"]["mel"] > 0
    assert loss[names[0]]["valid"] != loss[names[0]]["heldout"]  # two caches
    assert loss[names[0]] == loss[names[1]] == loss[names[2]]  # equal weights
    resynth = [c for c in calls if c[1:3] == ["eval", "resynth"]]
    assert [c[c.index("--vocoder") + 1] for c in resynth] == [
        "phone-vocoder", "outputs/vocoder-gpu-eval/best", "outputs/vocoder-gpu-eval/last",
        "phone-vocoder", "outputs/vocoder-gpu-eval/last"]
    assert [c[c.index("--data") + 1] for c in resynth] == \
        ["outputs/f0-spread-eval/valid40.tsv"] * 3 + ["heldout"] * 2
    # the bundle's held-out report did not exist: made before the pairing
    assert _pairs(calls) == [
        ["docs/vocoder-gpu-scale-bundle-valid.json", "docs/vocoder-gpu-scale-best-valid.json"],
        ["docs/vocoder-gpu-scale-bundle-valid.json", "docs/vocoder-gpu-scale-last-valid.json"],
        ["docs/vocoder-source-f0-1-heldout.json", "docs/vocoder-gpu-scale-heldout.json"]]
    p, calls = run(str(got))
    assert p.returncode == 0 and not [c for c in calls if c[1:3] == ["eval", "resynth"]]
    p, calls = run(str(tmp_path))
    assert p.returncode == 2 and "best.tar is missing" in p.stderr


@pytest.mark.parametrize("script,only", [("build_default_vocoder.sh", "vocoder"),
                                         ("build_default_lm.sh", "lm")])
def test_make_vocoder_and_lm_rebuild_the_bundle_as_the_switch_made_it(tmp_path, script, only):
    """make vocoder / make lm: the switch's step for one stage, from the first phone default
    (restored from history) to the bundled tokenizer itself, under its own RUN suffix."""
    root, env = _tree(tmp_path)
    log = tmp_path / "switch.log"
    (root / "scripts" / "switch_default_units.sh").write_text(
        f'echo "$PREV $TOK $ONLY $RUN $CORPUS" >> {log}\n')
    (root / "scripts" / "restore_baselines.sh").write_text(f"echo restore >> {log}\n")
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "python").symlink_to(Path(env["PY"]))  # the bench: logged only
    rc, calls, err = _run_script(root, env, script)
    assert rc == 0, err
    assert log.read_text().splitlines() == [
        "restore", f"outputs/baselines/phone-v1 speechlm/pretrained/phone-k100 {only} -rebuild "
                   "data/corpus-v2"]
    bench = [c for c in calls if c[0] == "PY"]
    assert [c[1] for c in bench] == (["benchmarks/bench_vocoder.py"] if only == "vocoder"
                                     else [])


def test_the_switch_refuses_an_unknown_only(tmp_path):
    root, env = _tree(tmp_path)
    proc = subprocess.run(["bash", str(root / "scripts" / "switch_default_units.sh")],
                          env={**env, "ONLY": "tokenizer", "TOK": "x"}, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "ONLY must be vocoder or lm" in proc.stderr


def test_gpu_vocoder_prepare_packs_checks_and_keeps(tmp_path):
    """scripts/gpu_vocoder_prepare.sh: the bundled vocoder's cache packed, the bundle scored on
    its valid batches before and after the round trip (close: the quantization costs little),
    the carry size printed; a rerun keeps the pack and the check; no cache: exit 2."""
    import json

    from test_cache_pack import _cache

    root, env = _tree(tmp_path)
    env = {**env, "PY": sys.executable, "PYTHONPATH": str(REPO)}
    cfg = json.loads((REPO / "speechlm/pretrained/phone-vocoder/config.json").read_text())
    (root / "speechlm/pretrained/phone-vocoder").mkdir(parents=True)
    (root / "speechlm/pretrained/phone-vocoder/config.json").write_text(json.dumps(cfg))
    script = root / "scripts" / "gpu_vocoder_prepare.sh"
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "training cache) is missing" in proc.stderr
    tag = cfg["unit_space"].rsplit("-", 1)[1]
    _cache(root / "data" / "vocoder" / f"v2-phone-k100-{tag}", unit_space=cfg["unit_space"])
    (root / ".whl").mkdir()
    (root / ".whl" / "soundfile-0-py3-none-any.whl").write_bytes(b"x")  # no download
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MiB to carry" in proc.stdout
    check = json.loads((root / "docs" / "vocoder-gpu-pack.json").read_text())
    assert check["pack"]["step"] == 0.2
    a, b = check["bundle_valid_loss"]["cache"], check["bundle_valid_loss"]["restored"]
    assert a.keys() == b.keys() and a["mel"] > 0
    assert all(abs(a[k] - b[k]) < 0.01 for k in a)  # the speaker reference is quantized too
    mtime = (root / "data/vocoder/pack-gpu/pack.json").stat().st_mtime_ns
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0
    assert (root / "data/vocoder/pack-gpu/pack.json").stat().st_mtime_ns == mtime


def test_vocoder_loss_wer_tabulates_the_decoders_here_and_names_the_others(tmp_path):
    """scripts/vocoder_loss_wer.sh: the losses of each decoder found (real python), beside its
    committed held-out WER; the missing ones named; equal weights give an undefined
    correlation, not a number; a decoder without its WER report is refused."""
    import json

    from speechlm.vocoder import Vocoder

    root, env = _tree(tmp_path)
    env = {**env, "PY": sys.executable, "PYTHONPATH": str(REPO)}
    _bundle_caches(root)
    v = Vocoder.load("phone-vocoder")
    for name in ("overfit", "overfit620"):
        v.save(root / "outputs/vocoder-overfit-eval" / name, half=True, int8=("speaker.",))
    (root / "docs").mkdir()
    for stem, wer in (("source-f0-1", 0.6), ("overfit", 0.7), ("overfit620", 0.65)):
        (root / "docs" / f"vocoder-{stem}-heldout.json").write_text(json.dumps({"groups": {
            "held-out voices": {"n": 61, "orig": {"wer": 0.18}, "hn-f0": {"wer": wer}}}}))
    script = root / "scripts" / "vocoder_loss_wer.sh"
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "left out: adv adv-strong grow-control grow warp" in proc.stderr
    rep = json.loads((root / "docs" / "vocoder-loss-wer.json").read_text())
    assert [r["decoder"] for r in rep["decoders"]] == ["bundle", "overfit", "overfit620"]
    assert [r["wer_heldout"] for r in rep["decoders"]] == [0.6, 0.7, 0.65]
    assert len({r["mel_heldout"] for r in rep["decoders"]}) == 1  # the same weights
    assert rep["correlation_with_wer_heldout"]["all"]["mel_heldout"]["pearson"] is None
    md = (root / "docs" / "vocoder-loss-wer.md").read_text()
    assert "Trivial baseline" in md and "undefined" in md
    (root / "docs" / "vocoder-overfit-heldout.json").unlink()
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 2 and "vocoder-overfit-heldout.json is missing" in proc.stderr


def test_vocoder_warp_needs_the_control_then_trains_scores_and_pairs(tmp_path):
    """scripts/vocoder_warp.sh: refused without make vocoder-grow's control; trains the warp
    recipe on THREADS threads, scores the bundle, the control and the run, judges the run once
    on the held-out engines and pairs it with the control and with the bundle; a rerun after
    the export trains nothing."""
    root, env = _tree(tmp_path)
    rc, calls, err = _run_script(root, env, "vocoder_warp.sh")
    assert rc == 2 and "make vocoder-grow" in err
    (root / "docs").mkdir()
    for f in ("vocoder-grow-control-heldout.json", "vocoder-source-f0-1-heldout.json"):
        (root / "docs" / f).write_text("{}")
    _exported(root / "outputs" / "vocoder-grow-eval", "grow-control")
    rc, calls, err = _run_script(root, env, "vocoder_warp.sh")
    assert rc == 0, err
    trains = [c for c in calls if c[1:3] == ["train", "vocoder"]]
    assert len(trains) == 1
    assert trains[0][trains[0].index("--config") + 1] == "configs/vocoder/phone-cpu-warp.toml"
    assert "--train.threads=2" in trains[0] and "--train.out=outputs/vocoder-warp" in trains[0]
    losses = [c for c in calls if c[0] == "PY" and "phone-vocoder" in c]
    assert losses and losses[0][-3:] == ["phone-vocoder", "outputs/vocoder-grow-eval/grow-control",
                                         "outputs/vocoder-warp-eval/warp"]
    judged = [c for c in calls if c[1:3] == ["eval", "resynth"]]
    assert [c[c.index("--vocoder") + 1] for c in judged] == ["outputs/vocoder-warp-eval/warp"]
    assert _pairs(calls) == [
        ["docs/vocoder-grow-control-heldout.json", "docs/vocoder-warp-heldout.json"],
        ["docs/vocoder-source-f0-1-heldout.json", "docs/vocoder-warp-heldout.json"]]
    _exported(root / "outputs" / "vocoder-warp-eval", "warp")
    rc, calls, err = _run_script(root, env, "vocoder_warp.sh")
    assert rc == 0 and not [c for c in calls if c[1:3] == ["train", "vocoder"]]


def test_vocoder_voices_trains_nested_voice_sets_on_equal_data_then_scores_and_pairs(tmp_path):
    """scripts/vocoder_voices.sh: JOBS other than 1 or 3 refused before any work; the bundle's
    speaker network exported; three runs of the voices recipe on 6, 13 and all base voices
    (each set inside the next, all five training engines in the smallest), one after another or
    side by side, and a fourth on every engine but MBROLA; the losses of the four and the
    bundle; the 6 and the 27 judged on the held-out engines and paired with each other, the 27
    with the bundle (judged first where its report is missing); a rerun after the exports trains
    nothing."""
    root, env = _tree(tmp_path)
    rc, calls, err = _run_script(root, {**env, "JOBS": "2"}, "vocoder_voices.sh")
    assert rc == 2 and "JOBS must be 1 or 3" in err and not calls

    def voices(call):
        arg = [a for a in call if a.startswith("--data.base_voices=")][0]
        inner = arg.split("=", 1)[1].strip("[]")
        return set(inner.split(",")) if inner else set()

    e = "outputs/vocoder-voices-eval"
    for jobs in ("1", "3"):
        rc, calls, err = _run_script(root, {**env, "JOBS": jobs}, "vocoder_voices.sh")
        assert rc == 0, err
        assert ["PY", "-"] in calls  # the speaker network exported (the fake writes nothing)
        trains = {[a for a in c if a.startswith("--train.out=")][0].split("-")[-1]: c
                  for c in calls if c[1:3] == ["train", "vocoder"]}
        assert sorted(trains) == ["nombrola", "voices13", "voices27", "voices6"]
        for c in trains.values():
            assert c[c.index("--config") + 1] == "configs/vocoder/phone-cpu-voices.toml"
        v6, v13, v27, nm = (voices(trains[k])
                            for k in ("voices6", "voices13", "voices27", "nombrola"))
        assert len(v6) == 6 and len(v13) == 13 and v6 < v13 and v27 == set()
        engines = {v.split("_")[0] for v in v6}
        assert engines == {"flite", "fest", "mbrola", "rhvoice", "espeak"}
        assert len(nm) == 24 and not [v for v in nm if v.startswith("mbrola")]
        assert v13 - {"mbrola_us1", "mbrola_us2"} < nm
        losses = [c for c in calls if c[0] == "PY" and "phone-vocoder" in c]
        assert losses[0][-5:] == [f"{e}/voices27", f"{e}/voices13", f"{e}/voices6",
                                  f"{e}/voices-nombrola", "phone-vocoder"]
        judged = [c for c in calls if c[1:3] == ["eval", "resynth"]]
        assert [c[c.index("--vocoder") + 1] for c in judged] == [
            f"{e}/voices6", f"{e}/voices27", "phone-vocoder"]  # the bundle's report is missing
        assert _pairs(calls) == [["docs/vocoder-voices-6-heldout.json",
                                  "docs/vocoder-voices-27-heldout.json"],
                                 ["docs/vocoder-source-f0-1-heldout.json",
                                  "docs/vocoder-voices-27-heldout.json"]]
        for f in (root / "docs").glob("vocoder-*"):
            f.unlink()
    _exported(root / e, "voices6", "voices13", "voices27", "voices-nombrola")
    rc, calls, err = _run_script(root, env, "vocoder_voices.sh")
    assert rc == 0 and not [c for c in calls if c[1:3] == ["train", "vocoder"]]


def test_real_voice_reports_judge_the_real_voice_with_other_real_speakers(tmp_path):
    """scripts/real_voice_reports.sh: resynthesis of every prompt of the real voice (four
    methods), of its telephone copies, and its continuations, each calibrated against the
    other real speakers; a rerun judges nothing again."""
    root, env = _tree(tmp_path)
    (root / "data/real/others/it_IT_m_Carlo").mkdir(parents=True)
    (root / "data/real/others/it_IT_m_Carlo/source.json").write_text("{}")
    rc, calls, err = _run_script(root, env, "real_voice_reports.sh")
    assert rc == 0, err
    evals = [c for c in calls if c[1] == "eval" and c[2] != "compare-resynth"]
    assert [c[2] for c in evals] == ["resynth", "resynth", "resynth", "continue"]
    assert [c[c.index("--wav-dir") + 1] for c in evals] == [
        "data/real/allison", "data/real/allison-8k", "data/real/allison", "data/real/allison"]
    assert evals[2][evals[2].index("--unit-oracle") + 1] == "phones"
    assert all(c[c.index("--reference-voices") + 1] == "data/real/others" for c in evals)
    assert evals[0][evals[0].index("--methods") + 1] == "hn-f0,hn,floor,copy-hn"
    assert all(c[c.index("--per-voice") + 1] == "0" for c in evals)
    assert (root / "docs/real-allison-continue.json").exists()
    assert _pairs(calls) == [
        ["docs/real-allison-resynth.json", "docs/real-allison-8k-resynth.json"],
        ["docs/real-allison-resynth.json", "docs/real-allison-oracle-phones.json"]]
    rc, calls, err = _run_script(root, env, "real_voice_reports.sh")
    assert rc == 0 and [c[1:3] for c in calls] == [["eval", "compare-resynth"]] * 2, err


def test_vocoder_real_joins_real_voices_trains_judges_and_pairs(tmp_path):
    """scripts/vocoder_real.sh: the three real training voices analysed and joined to the
    bundled cache, the control's recipe trained on it, judged on the real voice beside the
    control (and the bundle when its report exists) and on the held-out engines."""
    root, env = _tree(tmp_path)
    (root / "docs").mkdir()
    (root / "docs/vocoder-grow-control-heldout.json").write_text("{}")
    (root / "docs/real-allison-resynth.json").write_text("{}")
    for d in ("outputs/vocoder-grow-eval/grow-control", "data/vocoder/v2-phone-k100-8b1f9cc1",
              "data/real/others/it_IT_m_Carlo"):
        (root / d).mkdir(parents=True)
    (root / "outputs/vocoder-grow-eval/grow-control/config.json").write_text("{}")
    (root / "data/vocoder/v2-phone-k100-8b1f9cc1/train.json").write_text("{}")
    (root / "data/real/others/it_IT_m_Carlo/source.json").write_text("{}")
    rc, calls, err = _run_script(root, env, "vocoder_real.sh")
    assert rc == 0, err
    built = [c[c.index("--out") + 1] for c in calls if c[1:3] == ["corpus", "real"]]
    assert built == ["data/real/train/fr_CA_f_June", "data/real/train/it_IT_m_Carlo",
                     "data/real/train/ru_RU_f_IvrvoiceRU"]
    assert ["PY", "-m", "speechlm.train.cache_pack", "merge",
            "data/vocoder/v2-real-phone-k100-8b1f9cc1", "data/vocoder/v2-phone-k100-8b1f9cc1",
            "data/vocoder/real-train-phone-k100-8b1f9cc1"] in calls
    train = [c for c in calls if c[1:3] == ["train", "vocoder"]]
    assert len(train) == 1 and train[0][train[0].index("--config") + 1] == \
        "configs/vocoder/phone-cpu-real.toml"
    judged = [(c[c.index("--vocoder") + 1], c[c.index("--json") + 1])
              for c in calls if c[1:3] == ["eval", "resynth"]]
    assert judged == [
        ("outputs/vocoder-real-eval/real", "docs/vocoder-real-allison.json"),
        ("outputs/vocoder-grow-eval/grow-control", "docs/vocoder-real-control-allison.json"),
        ("outputs/vocoder-real-eval/real", "docs/vocoder-real-heldout.json")]
    assert _pairs(calls) == [
        ["docs/vocoder-real-control-allison.json", "docs/vocoder-real-allison.json"],
        ["docs/real-allison-resynth.json", "docs/vocoder-real-allison.json"],
        ["docs/vocoder-grow-control-heldout.json", "docs/vocoder-real-heldout.json"]]
    (root / "docs/vocoder-grow-control-heldout.json").unlink()
    rc, _, err = _run_script(root, env, "vocoder_real.sh")
    assert rc == 2 and "run make vocoder-grow first" in err


def test_real_voice_units_reads_both_sets_against_one_aligner(tmp_path):
    """scripts/real_voice_units.sh: the held-out engines relabelled by the aligner, then one
    eval tokenizer table of both unit sets on the real voice and on them; refused (exit 2)
    before the real voice is built."""
    root, env = _tree(tmp_path)
    rc, _, err = _run_script(root, env, "real_voice_units.sh")
    assert rc == 2 and "run make real-voice" in err
    (root / "data/real/allison").mkdir(parents=True)
    (root / "data/real/allison/allison.tsv").write_text("x\n")
    rc, calls, err = _run_script(root, env, "real_voice_units.sh")
    assert rc == 0, err
    assert calls[0][:2] == ["PY", "-"] and calls[0][3:] == ["data/real/heldout-ps",
                                                           "docs/real-aligner.json"]
    (ev,) = [c for c in calls if c[1:3] == ["eval", "tokenizer"]]
    manifests = [ev[i + 1] for i, a in enumerate(ev) if a == "--manifest"]
    tokenizers = [ev[i + 1] for i, a in enumerate(ev) if a == "--tokenizer"]
    assert manifests == ["data/real/allison/allison.tsv", "data/real/heldout-ps/heldout-ps.tsv"]
    assert tokenizers == ["mfcc-k100", "phone-k100"]


def test_whisper_units_fits_trains_reports_judges_with_two_asrs_and_pairs(tmp_path):
    """scripts/whisper_units.sh: the Whisper tokenizer fitted, the bundled decoder carried over
    to its units, the units against the bundled ones, then the real voice judged by Whisper and
    pocketsphinx beside the control, and the held-out engines paired with the control's report;
    refused (exit 2) without make vocoder-grow's control."""
    root, env = _tree(tmp_path)
    rc, _, err = _run_script(root, env, "whisper_units.sh")
    assert rc == 2 and "run make vocoder-grow first" in err
    (root / "docs").mkdir()
    (root / "docs/vocoder-grow-control-heldout.json").write_text("{}")
    for d in ("outputs/vocoder-grow-eval/grow-control", "data/vocoder/v2-phone-k100-8b1f9cc1",
              "data/real/allison"):
        (root / d).mkdir(parents=True)
    (root / "outputs/vocoder-grow-eval/grow-control/config.json").write_text("{}")
    (root / "data/vocoder/v2-phone-k100-8b1f9cc1/train.json").write_text("{}")
    (root / "data/real/allison/allison.tsv").write_text("x\n")
    rc, calls, err = _run_script(root, env, "whisper_units.sh")
    assert rc == 0, err
    fits = [c for c in calls if c[1:3] == ["train", "tokenizer"]]
    assert [(c[c.index("--features") + 1], c[c.index("--k") + 1], c[c.index("--out") + 1])
            for c in fits] == [
        ("whisper", "100", "outputs/tokenizers/whisper-l3-k100"),
        ("whisper", "50", "outputs/tokenizers/whisper-l3-k50"),
        ("whisper", "200", "outputs/tokenizers/whisper-l3-k200"),
        ("whisper", "500", "outputs/tokenizers/whisper-l3-k500"),
        ("speechlm/pretrained/phone-k100/encoder", "500", "outputs/tokenizers/phone-k500-b6400")]
    assert all(c[c.index("--layer") + 1] == "3" and c[c.index("--shift") + 1] == "1"
               for c in fits[:4])
    (train,) = [c for c in calls if c[1:3] == ["train", "vocoder"]]
    assert train[train.index("--config") + 1] == "configs/vocoder/whisper-cpu.toml"
    units, ks = [c for c in calls if c[1:3] == ["eval", "tokenizer"]]
    assert [units[i + 1] for i, a in enumerate(units) if a == "--tokenizer"] == [
        "outputs/tokenizers/whisper-l3-k100", "phone-k100"]
    assert [ks[i + 1] for i, a in enumerate(ks) if a == "--tokenizer"] == [
        "outputs/tokenizers/whisper-l3-k50", "outputs/tokenizers/whisper-l3-k100",
        "outputs/tokenizers/whisper-l3-k200", "outputs/tokenizers/whisper-l3-k500",
        "outputs/tokenizers/phone-k500-b6400"] and "--no-ued" in ks
    assert calls.index(train) < calls.index(units)  # the longest step first
    judged = [c for c in calls if c[1:3] == ["eval", "resynth"]]
    assert [(c[c.index("--vocoder") + 1], c[c.index("--asr") + 1]) for c in judged] == [
        ("outputs/vocoder-whisper-eval/whisper", "whisper,pocketsphinx"),
        ("outputs/vocoder-grow-eval/grow-control", "whisper,pocketsphinx"),
        ("outputs/vocoder-whisper-eval/whisper", "whisper")]
    assert all(c[c.index("--reference-voices") + 1] == "data/real/others" for c in judged[:2])
    assert _pairs(calls) == [
        ["docs/whisper-units-control-allison.json", "docs/whisper-units-allison.json"],
        ["docs/vocoder-grow-control-heldout.json", "docs/whisper-units-heldout.json"]]


def test_switch_whisper_default_bundles_trains_both_then_judges_against_the_phone_bundle(tmp_path):
    """scripts/switch_whisper_default.sh: refused (exit 2) without the corpus and the phone
    bundle's reports; then the Whisper tokenizer fitted and bundled, the phone units' analysis
    cache built before the vocoder carries the phone decoder over, the LM on the bundled units,
    both exported into speechlm/pretrained, every report paired with the phone bundle's report
    on the same data; a rerun after the exports trains and fits nothing again."""
    root, env = _tree(tmp_path)
    rc, _, err = _run_script(root, env, "switch_whisper_default.sh")
    assert rc == 2 and "corpus.json is missing: make corpus-world HOURS=12.5" in err
    assert len(err.strip().splitlines()) == 1
    (root / "data/corpus-v2").mkdir(parents=True)
    (root / "data/corpus-v2/corpus.json").write_text("{}")
    rc, _, err = _run_script(root, env, "switch_whisper_default.sh")
    assert rc == 2 and "b6400r-heldout.json is missing: the phone bundle's report" in err
    _touch(root, "docs/switch-vocoder-new-b6400r-heldout.json",
           "docs/switch-vocoder-new-b6400r-test.json", "docs/real-allison-resynth.json",
           "docs/real-allison-continue.json", "data/real/allison/allison.tsv",
           "data/probes-v2/syntactic/pairs.tsv")
    rc, calls, err = _run_script(root, env, "switch_whisper_default.sh")
    assert rc == 0, err
    (fit,) = [c for c in calls if c[1:3] == ["train", "tokenizer"]]
    assert [fit[fit.index(f) + 1] for f in ("--features", "--layer", "--shift", "--k", "--out")] \
        == ["whisper", "3", "1", "100", "outputs/tokenizers/whisper-l3-k100"]
    py = [c for c in calls if c[0] == "PY"]
    assert py[0][2:] == ["outputs/tokenizers/whisper-l3-k100", "speechlm/pretrained/whisper-k100"]
    cache = [c for c in py if c[2:] == ["data/corpus-v2", "data/vocoder/v2-phone-k100-8b1f9cc1"]]
    (voc,) = [c for c in calls if c[1:3] == ["train", "vocoder"]]
    (lm,) = [c for c in calls if c[1:3] == ["train", "lm"]]
    assert cache and calls.index(cache[0]) < calls.index(voc)  # the cache before the vocoder
    assert voc[voc.index("--config") + 1] == "configs/vocoder/whisper-cpu.toml"
    assert {"--data.tokenizer=whisper-k100",
            "--data.feats_from=data/vocoder/v2-phone-k100-8b1f9cc1",
            "--train.out=outputs/vocoder-whisper-default", "--train.threads=1"} <= set(voc)
    assert lm[lm.index("--config") + 1] == "configs/lm/whisper-cpu.toml"
    exports = [c[2:] for c in py if c[2:3] in (["outputs/vocoder-whisper-default"],
                                               ["outputs/lm-whisper-cpu"])]
    assert exports == [["outputs/vocoder-whisper-default", "speechlm/pretrained/whisper-vocoder",
                        "last", "speaker.,pre.,post.,duration.blocks."],  # int8 prefixes
                       ["outputs/lm-whisper-cpu", "speechlm/pretrained/whisper-lm"]]
    judged = [c for c in calls if c[1:3] == ["eval", "resynth"]]
    assert {c[c.index("--vocoder") + 1] for c in judged} == {"whisper-vocoder"}
    assert [c[c.index("--data") + 1] if "--data" in c else c[c.index("--wav-dir") + 1]
            for c in judged] == ["heldout", "test", "data/real/allison", "data/real/allison"]
    assert judged[-1][judged[-1].index("--methods") + 1] == "floor"
    assert _pairs(calls) == [
        ["docs/switch-vocoder-new-b6400r-heldout.json", "docs/switch-whisper-vocoder-heldout.json"],
        ["docs/switch-vocoder-new-b6400r-test.json", "docs/switch-whisper-vocoder-test.json"],
        ["docs/real-allison-resynth.json", "docs/switch-whisper-allison.json"]]
    (lm_eval,) = [c for c in calls if c[1:3] == ["eval", "lm"]]
    assert lm_eval[lm_eval.index("--model") + 1] == "whisper-lm"
    (cont,) = [c for c in calls if c[1:3] == ["eval", "continue"]]
    assert cont[cont.index("--model") + 1] == "outputs/switch-whisper/model"
    assert [c[3:5] for c in calls if c[1:3] == ["eval", "compare-continue"]] == [
        ["docs/real-allison-continue.json", "docs/switch-whisper-allison-continue.json"]]
    model = root / "outputs/switch-whisper/model"
    assert {p.name: os.readlink(p).split("/")[-1] for p in model.iterdir()} == {
        "tokenizer": "whisper-k100", "lm": "whisper-lm", "vocoder": "whisper-vocoder"}
    # a rerun after the fit and the exports: nothing trained, fitted or exported again
    (root / "outputs/tokenizers/whisper-l3-k100").mkdir(parents=True)
    (root / "outputs/tokenizers/whisper-l3-k100/config.json").write_text("{}")
    _exported(root / "speechlm" / "pretrained", "whisper-k100", "whisper-lm", "whisper-vocoder")
    (root / "docs/whisper-units-heldout.json").write_text("{}")  # make whisper-units' float16
    rc, calls, err = _run_script(root, env, "switch_whisper_default.sh")
    assert rc == 0, err
    assert not [c for c in calls if c[1] == "train" or c[0] == "PY"]
    assert ["docs/whisper-units-heldout.json", "docs/switch-whisper-vocoder-heldout.json"] \
        in _pairs(calls)  # the int8 bundle against the same weights in float16


def test_tempo_reports_fit_then_judge_the_default_against_tempo_1_and_resume(tmp_path):
    """scripts/tempo_reports.sh: refuses to start without its inputs (naming the missing one),
    then runs the tempo check and Allison's continuations through the default model (no --model
    and no --tempo: the fitted pace), paired with the committed tempo-1 report; a rerun judges
    nothing again."""
    root, env = _tree(tmp_path)
    rc, calls, err = _run_script(root, env, "tempo_reports.sh")
    assert rc == 2 and "data/real/allison is missing" in err and not calls
    for d in ("data/real/allison", "data/real/others", "data/corpus-v2", "docs"):
        (root / d).mkdir(parents=True)
    (root / "data/corpus-v2/heldout.tsv").write_text("x\n")
    rc, calls, err = _run_script(root, env, "tempo_reports.sh")
    assert rc == 2 and "switch-whisper-allison-continue.json is missing" in err
    (root / "docs/switch-whisper-allison-continue.json").write_text("{}")
    rc, calls, err = _run_script(root, env, "tempo_reports.sh")
    assert rc == 0, err
    check = [c for c in calls if c[0] == "PY"]
    assert [c[1] for c in check] == ["scripts/check_tempo.py"] * 2
    assert all(c[c.index("--real") + 1] == "data/real/allison" for c in check)
    # the default, then the phone bundle through a model directory of links to its stages
    assert "--model" not in check[0]
    phone = root / check[1][check[1].index("--model") + 1]
    assert {p.name: p.resolve().name for p in phone.iterdir()} == {
        "tokenizer": "phone-k100", "lm": "phone-lm", "vocoder": "phone-vocoder"}
    assert check[1][check[1].index("--json") + 1] == "docs/tempo-fit-phone.json"
    cont = [c for c in calls if c[1:3] == ["eval", "continue"]]
    assert len(cont) == 1
    assert "--model" not in cont[0] and "--tempo" not in cont[0]
    assert cont[0][cont[0].index("--wav-dir") + 1] == "data/real/allison"
    assert cont[0][cont[0].index("--json") + 1] == "docs/tempo-allison-continue.json"
    pairs = [c[3:5] for c in calls if c[1:3] == ["eval", "compare-continue"]]
    assert pairs == [["docs/switch-whisper-allison-continue.json",
                      "docs/tempo-allison-continue.json"]]
    _touch(root, "docs/tempo-fit.json", "docs/tempo-fit-phone.json")
    rc, calls, err = _run_script(root, env, "tempo_reports.sh")
    assert rc == 0, err
    assert not [c for c in calls if c[0] == "PY" or c[1:3] == ["eval", "continue"]]


def test_whisper_k500_trains_the_k100_recipe_at_k500_then_pairs_it_and_resumes(tmp_path):
    """scripts/whisper_k500.sh: needs the K = 100 side's reports; fits K = 500 as K = 100 was
    fitted, trains configs/vocoder/whisper-k500-cpu.toml, judges the export on Allison (both
    judges) and the held-out engines, each paired with the K = 100 report, then trains the LM
    recipe on the same units and judges its probes; a rerun after the export and the reports
    trains nothing again."""
    root, env = _tree(tmp_path)
    rc, calls, err = _run_script(root, env, "whisper_k500.sh")
    assert rc == 2 and "whisper-units-allison.json (the K = 100 side) is missing" in err
    _touch(root, "docs/whisper-units-allison.json", "docs/whisper-units-heldout.json",
           "data/corpus-v2/train.tsv", "data/vocoder/v2-phone-k100-8b1f9cc1/train.json",
           "data/real/allison/allison.tsv")
    rc, calls, err = _run_script(root, env, "whisper_k500.sh")
    assert rc == 0, err
    tok = [c for c in calls if c[1:3] == ["train", "tokenizer"]]
    assert len(tok) == 1 and tok[0][tok[0].index("--k") + 1] == "500"
    assert tok[0][tok[0].index("--layer") + 1] == "3"
    train = [c for c in calls if c[1:3] == ["train", "vocoder"]]
    assert len(train) == 1
    assert train[0][train[0].index("--config") + 1] == "configs/vocoder/whisper-k500-cpu.toml"
    judged = [c for c in calls if c[1:3] == ["eval", "resynth"]]
    out = "outputs/vocoder-whisper-k500-eval/whisper-k500"
    assert [c[c.index("--vocoder") + 1] for c in judged] == [out, out]
    assert judged[0][judged[0].index("--asr") + 1] == "whisper,pocketsphinx"
    assert judged[1][judged[1].index("--data") + 1] == "heldout"
    assert _pairs(calls) == [
        ["docs/whisper-units-allison.json", "docs/whisper-k500-allison.json"],
        ["docs/whisper-units-heldout.json", "docs/whisper-k500-heldout.json"]]
    lm = [c for c in calls if c[1:3] == ["train", "lm"]]
    assert len(lm) == 1 and lm[0][lm[0].index("--config") + 1] == \
        "configs/lm/whisper-k500-cpu.toml"
    (lm_eval,) = [c for c in calls if c[1:3] == ["eval", "lm"]]
    assert lm_eval[lm_eval.index("--model") + 1] == "outputs/lm-whisper-k500/model"
    assert lm_eval[lm_eval.index("--json") + 1] == "docs/whisper-k500-lm.json"
    assert calls.index(lm[0]) < calls.index(lm_eval)
    _exported(root / "outputs/tokenizers", "whisper-l3-k500")
    _exported(root / "outputs/vocoder-whisper-k500-eval", "whisper-k500")
    rc, calls, err = _run_script(root, env, "whisper_k500.sh")
    assert rc == 0, err
    assert not [c for c in calls if c[1] == "train" or c[1:3] in (["eval", "resynth"],
                                                                  ["eval", "lm"])]


def test_whisper_phone_trains_the_head_then_its_units_lm_and_reports_and_resumes(tmp_path):
    """scripts/whisper_phone.sh: needs the corpus; trains the Whisper phone head, makes its CTC
    tokenizer, judges it beside the bundled tokenizers on seen, held-out and real voices, then
    trains the LM recipe on its units and judges the probes; a rerun trains nothing again."""
    root, env = _tree(tmp_path)
    rc, calls, err = _run_script(root, env, "whisper_phone.sh")
    assert rc == 2 and "train.tsv is missing" in err and not calls
    _touch(root, "data/corpus-v2/train.tsv", "data/real/allison/allison.tsv",
           "data/probes-v2/syntactic/pairs.tsv")
    rc, calls, err = _run_script(root, env, "whisper_phone.sh")
    assert rc == 0, err
    (enc,) = [c for c in calls if c[1:3] == ["train", "encoder"]]
    assert enc[enc.index("--config") + 1] == "configs/encoder/whisper-phone-cpu.toml"
    (tok,) = [c for c in calls if c[1:3] == ["train", "tokenizer"]]
    assert tok[tok.index("--features") + 1] == "outputs/encoder-whisper-phone/model"
    assert tok[tok.index("--layer") + 1] == "ctc"
    (ev,) = [c for c in calls if c[1:3] == ["eval", "tokenizer"]]
    assert [ev[i + 1] for i, a in enumerate(ev) if a == "--tokenizer"] == [
        "whisper-k100", "phone-k100", "outputs/tokenizers/whisper-phone-ctc"]
    assert [ev[i + 1] for i, a in enumerate(ev) if a == "--manifest"] == [
        "test", "heldout", "data/real/allison/allison.tsv"]
    (lm,) = [c for c in calls if c[1:3] == ["train", "lm"]]
    assert lm[lm.index("--config") + 1] == "configs/lm/whisper-phone-cpu.toml"
    (lm_eval,) = [c for c in calls if c[1:3] == ["eval", "lm"]]
    assert lm_eval[lm_eval.index("--model") + 1] == "outputs/lm-whisper-phone/model"
    assert calls.index(enc) < calls.index(tok) < calls.index(ev) < calls.index(lm) < \
        calls.index(lm_eval)
    assert "no vocoder step" in err and not [c for c in calls if c[1:3] == ["train", "vocoder"]]
    _exported(root / "outputs/tokenizers", "whisper-phone-ctc")
    _touch(root, "docs/whisper-units-allison.json", "docs/whisper-units-heldout.json",
           "data/vocoder/v2-phone-k100-8b1f9cc1/train.json")
    rc, calls, err = _run_script(root, env, "whisper_phone.sh")
    assert rc == 0, err
    assert not [c for c in calls if c[1:3] in (["train", "encoder"], ["train", "lm"],
                                               ["eval", "tokenizer"], ["eval", "lm"])]
    (voc,) = [c for c in calls if c[1:3] == ["train", "vocoder"]]
    assert voc[voc.index("--config") + 1] == "configs/vocoder/whisper-phone-cpu.toml"
    judged = [c for c in calls if c[1:3] == ["eval", "resynth"]]
    out = "outputs/vocoder-whisper-phone-eval/whisper-phone"
    assert [c[c.index("--vocoder") + 1] for c in judged] == [out, out]
    assert judged[0][judged[0].index("--asr") + 1] == "whisper,pocketsphinx"
    assert _pairs(calls) == [
        ["docs/whisper-units-allison.json", "docs/whisper-phone-allison.json"],
        ["docs/whisper-units-heldout.json", "docs/whisper-phone-heldout.json"]]
    _exported(root / "outputs/vocoder-whisper-phone-eval", "whisper-phone")
    rc, calls, err = _run_script(root, env, "whisper_phone.sh")
    assert rc == 0, err
    assert not [c for c in calls if c[1] == "train" or c[1:3] in (["eval", "resynth"],
                                                                  ["eval", "lm"])]


def test_switch_wphone_default_exports_the_three_then_judges_against_the_default_and_resumes(
        tmp_path):
    """scripts/switch_wphone_default.sh: refused (exit 2, one line) without make whisper-phone's
    runs or the previous default's reports; then the three bundles exported as they ship (the
    head in float16, the LM's best in float16, the vocoder's last weights with its blocks in
    int8), linked into one model, and every report paired with the previous default's report on
    the same prompts; a rerun exports and judges nothing again."""
    root, env = _tree(tmp_path)
    rc, calls, err = _run_script(root, env, "switch_wphone_default.sh")
    assert rc == 2 and "whisper-phone-ctc/config.json is missing: make whisper-phone" in err
    assert len(err.strip().splitlines()) == 1 and not calls
    _touch(root, "outputs/tokenizers/whisper-phone-ctc/config.json",
           "outputs/lm-whisper-phone/model/config.json",
           "outputs/vocoder-whisper-phone/state.safetensors", "data/real/allison/allison.tsv",
           "data/corpus-v2/heldout.tsv")
    rc, calls, err = _run_script(root, env, "switch_wphone_default.sh")
    assert rc == 2 and "tempo-allison-continue.json is missing: the previous default's" in err
    _touch(root, "docs/tempo-allison-continue.json", "docs/switch-whisper-allison.json",
           "docs/switch-whisper-vocoder-heldout.json", "docs/switch-whisper-vocoder-test.json",
           "docs/whisper-phone-heldout.json", "data/probes-v2/syntactic/pairs.tsv",
           "docs/continue-default.json", "outputs/f0-spread-eval/valid40.tsv",
           "outputs/f0-spread-eval/valid40.wrd")
    rc, calls, err = _run_script(root, env, "switch_wphone_default.sh")
    assert rc == 0, err
    py = [c[2:] for c in calls if c[0] == "PY"]
    assert py == [["outputs/tokenizers/whisper-phone-ctc", "speechlm/pretrained/whisper-phone"],
                  ["outputs/lm-whisper-phone", "speechlm/pretrained/whisper-phone-lm"],
                  ["outputs/vocoder-whisper-phone", "speechlm/pretrained/whisper-phone-vocoder",
                   "last", "speaker.,pre.,post.,duration.blocks."],
                  ["speechlm/pretrained/whisper-phone-lm",
                   "speechlm/pretrained/whisper-phone-vocoder"],  # their tokenizer renamed
                  *[["--model", "outputs/switch-wphone/model",
                     "--data", data, "--thresholds", "0.2,0.25,0.3,0.35,0.4,0.45,0.5",
                     "--widths", "9", "--json", f"docs/wphone-drawn-voicing-{name}.json"]
                    for name, data in (("valid", "outputs/f0-spread-eval/valid40.tsv"),
                                       ("allison", "data/real/allison/allison.tsv"))]]
    model = root / "outputs/switch-wphone/model"
    assert {p.name: os.readlink(p).split("/")[-1] for p in model.iterdir()} == {
        "tokenizer": "whisper-phone", "lm": "whisper-phone-lm",
        "vocoder": "whisper-phone-vocoder"}
    cont, engines = [c for c in calls if c[1:3] == ["eval", "continue"]]
    assert cont[cont.index("--model") + 1] == "outputs/switch-wphone/model"
    assert engines[engines.index("--model") + 1] == "outputs/switch-wphone/model"
    assert [engines[engines.index(f) + 1] for f in ("--data", "--per-voice", "--seed")] == [
        "heldout", "1", "0"]  # the prompts and seeds of make eval-continue's report
    (lm_eval,) = [c for c in calls if c[1:3] == ["eval", "lm"]]
    assert lm_eval[lm_eval.index("--model") + 1] == "whisper-phone-lm"
    assert lm_eval[lm_eval.index("--probes") + 1] == "data/probes-v2"
    assert cont[cont.index("--wav-dir") + 1] == "data/real/allison"
    judged = [c for c in calls if c[1:3] == ["eval", "resynth"]]
    assert {c[c.index("--vocoder") + 1] for c in judged} == {"whisper-phone-vocoder"}
    assert [c[c.index("--data") + 1] if "--data" in c else c[c.index("--wav-dir") + 1]
            for c in judged] == ["heldout", "test", "data/real/allison", "data/real/allison"]
    assert judged[-1][judged[-1].index("--methods") + 1] == "floor"
    assert [c[3:5] for c in calls if c[1:3] == ["eval", "compare-continue"]] == [
        ["docs/tempo-allison-continue.json", "docs/switch-wphone-allison-continue.json"],
        ["docs/continue-default.json", "docs/switch-wphone-heldout-continue.json"]]
    assert _pairs(calls) == [
        ["docs/switch-whisper-vocoder-heldout.json", "docs/switch-wphone-vocoder-heldout.json"],
        ["docs/switch-whisper-vocoder-test.json", "docs/switch-wphone-vocoder-test.json"],
        ["docs/whisper-phone-heldout.json", "docs/switch-wphone-vocoder-heldout.json"],
        ["docs/switch-whisper-allison.json", "docs/switch-wphone-allison.json"]]
    _exported(root / "speechlm" / "pretrained", "whisper-phone", "whisper-phone-lm",
              "whisper-phone-vocoder")
    _touch(root, "docs/wphone-drawn-voicing-valid.json", "docs/wphone-drawn-voicing-allison.json")
    rc, calls, err = _run_script(root, env, "switch_wphone_default.sh")
    assert rc == 0, err
    assert not [c for c in calls if c[0] == "PY" and c[2] != "speechlm/pretrained/whisper-phone-lm"
                or c[1:3] in (["eval", "resynth"], ["eval", "continue"], ["eval", "lm"])]


def test_int8_units_judges_int8_against_fp32_then_benchmarks_and_resumes(tmp_path):
    """scripts/int8_units.sh: refused (exit 2, one line) without the corpus or Allison's
    prompts; then one tokenizer report with float32 as the paired base and int8 on seen,
    held-out and real voices, and the bench on the default; a rerun judges nothing again and
    SKIP_BENCH leaves the bench out."""
    root, env = _tree(tmp_path)
    rc, calls, err = _run_script(root, env, "int8_units.sh")
    assert rc == 2 and "test.tsv is missing" in err and not calls
    assert len(err.strip().splitlines()) == 1
    _touch(root, "data/corpus-v2/test.tsv")
    rc, calls, err = _run_script(root, env, "int8_units.sh")
    assert rc == 2 and "allison.tsv is missing: run make real-voice" in err and not calls
    _touch(root, "data/real/allison/allison.tsv")
    rc, calls, err = _run_script(root, env, "int8_units.sh")
    assert rc == 0, err
    (tok,) = [c for c in calls if c[1:3] == ["eval", "tokenizer"]]
    assert [tok[i + 1] for i, a in enumerate(tok) if a == "--precision"] == ["fp32", "int8"]
    assert [tok[i + 1] for i, a in enumerate(tok) if a == "--manifest"] == [
        "test", "heldout", "data/real/allison/allison.tsv"]
    assert tok[tok.index("--json") + 1] == "docs/tokenizer-wphone-int8.json"
    benches = [c for c in calls if c[0] == "PY"]
    assert [b[1] for b in benches] == ["benchmarks/bench_whisper_tokenize.py"] * 2
    assert all(b[b.index("--tokenizer") + 1] == "whisper-phone" for b in benches)
    assert [b[b.index("--json") + 1] for b in benches] == [
        "docs/bench-whisper-phone-int8.json", "docs/bench-whisper-phone-int8-passive.json"]
    assert "--no-memory" in benches[1] and "--no-memory" not in benches[0]
    _touch(root, "docs/bench-whisper-phone-int8.json")
    rc, calls, err = _run_script(root, env, "int8_units.sh")
    assert rc == 0 and [c[c.index("--json") + 1] for c in calls if c[0] == "PY"] == [
        "docs/bench-whisper-phone-int8-passive.json"]
    _touch(root, "docs/bench-whisper-phone-int8-passive.json")
    rc, calls, err = _run_script(root, env, "int8_units.sh")
    assert rc == 0 and not [c for c in calls if c[0] == "PY" or c[1:2] == ["eval"]]
    for f in ("docs/bench-whisper-phone-int8.json", "docs/bench-whisper-phone-int8-passive.json"):
        (root / f).unlink()
    rc, calls, err = _run_script(root, {**env, "SKIP_BENCH": "1"}, "int8_units.sh")
    assert rc == 0 and not calls


def test_drawn_f0_split_judges_the_split_on_allison_and_the_held_out_engines_then_pairs(
        tmp_path):
    """scripts/drawn_f0_split.sh: refused (exit 2, one line) without Allison's prompts or the
    corpus; then one resynthesis report per data set with the source contour, the drawn one
    and the three split methods through the default vocoder, each paired by
    scripts/drawn_f0_parts.py; a rerun judges nothing again."""
    root, env = _tree(tmp_path)
    rc, calls, err = _run_script(root, env, "drawn_f0_split.sh")
    assert rc == 2 and "allison.tsv is missing: run make real-voice" in err and not calls
    assert len(err.strip().splitlines()) == 1
    _touch(root, "data/real/allison/allison.tsv")
    rc, calls, err = _run_script(root, env, "drawn_f0_split.sh")
    assert rc == 2 and "heldout.tsv is missing" in err and not calls
    _touch(root, "data/corpus-v2/heldout.tsv")
    rc, calls, err = _run_script(root, env, "drawn_f0_split.sh")
    assert rc == 0, err
    judged = [c for c in calls if c[1:3] == ["eval", "resynth"]]
    assert [c[c.index("--json") + 1] for c in judged] == [
        "docs/drawn-f0-split-allison.json", "docs/drawn-f0-split-heldout.json"]
    for c in judged:
        assert c[c.index("--methods") + 1] == "hn-f0,hn,hn-drawn-f0,hn-src-voicing,hn-src-pitch"
        assert c[c.index("--vocoder") + 1] == "whisper-phone-vocoder"
    assert judged[0][judged[0].index("--wav-dir") + 1] == "data/real/allison"
    assert judged[1][judged[1].index("--data") + 1] == "heldout"
    pairs = [c for c in calls if c[0] == "PY"]
    assert [c[1:3] for c in pairs] == [["scripts/drawn_f0_parts.py",
                                        "docs/drawn-f0-split-allison.json"],
                                       ["scripts/drawn_f0_parts.py",
                                        "docs/drawn-f0-split-heldout.json"]]
    _touch(root, "docs/drawn-f0-split-allison-pairs.json", "docs/drawn-f0-split-heldout-pairs.json")
    rc, calls, err = _run_script(root, env, "drawn_f0_split.sh")
    assert rc == 0 and not calls


def test_drawn_f0_parts_pairs_methods_of_one_report(tmp_path):
    """scripts/drawn_f0_parts.py: each split method and hn paired with hn-f0 and hn over the
    same utterances (WER as corpus word errors); a report without hn-f0 or an unreadable one
    is refused with one line and exit 2."""
    def utt(i, errs):
        row = {"name": f"u{i}", "voice": "v", "text": "a b c d", "held_out": True,
               "orig": {"asr": "a b c d"}}
        for m, hyp in errs.items():
            row[m] = {"asr": hyp, "dnsmos": 3.0, "similarity": 0.7}
        return row

    good, bad = "a b c d", "a x c y"
    report = {"vocoder": "v", "methods": ["hn-f0", "hn", "hn-src-pitch"],
              "utterances": [utt(i, {"hn-f0": good, "hn": bad, "hn-src-pitch": good})
                             for i in range(6)]}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(report))
    out = tmp_path / "p.json"
    proc = subprocess.run([sys.executable, str(REPO / "scripts/drawn_f0_parts.py"), str(path),
                           "--json", str(out), "--markdown", str(tmp_path / "p.md")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = {(r["other"], r["base"]): r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {("hn", "hn-f0"), ("hn-src-pitch", "hn-f0"), ("hn-src-pitch", "hn")}
    assert rows[("hn", "hn-f0")]["wer"]["delta"] == 0.5
    assert rows[("hn-src-pitch", "hn")]["wer"]["delta"] == -0.5
    assert rows[("hn-src-pitch", "hn-f0")]["wer"]["delta"] == 0.0
    assert rows[("hn", "hn-f0")]["mean"]["wer"] == 0.5
    assert json.loads(out.read_text())["original_wer"] == 0.0
    report["methods"] = ["hn"]
    path.write_text(json.dumps(report))
    for arg in (str(path), str(tmp_path / "missing.json")):
        proc = subprocess.run([sys.executable, str(REPO / "scripts/drawn_f0_parts.py"), arg],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_wphone_f0_spread_chooses_on_valid_then_judges_the_choice_against_the_split(tmp_path):
    """scripts/wphone_f0_spread.sh: the default vocoder's copies (its int8 blocks as shipped)
    judged on the valid subset and paired with spread 1; with CHOSEN, refused (exit 2, one
    line) without the drawn-F0 split's reports, then judged on Allison's 80 and the held-out
    engines and paired with the split's reports."""
    root, env = _tree(tmp_path)
    sub = root / "outputs" / "f0-spread-eval"
    sub.mkdir(parents=True)
    (sub / "valid40.tsv").write_text("/corpus\n")
    (sub / "valid40.wrd").write_text("")
    rc, calls, err = _run_script(root, env, "wphone_f0_spread.sh")
    assert rc == 0, err
    assert [c[3:] for c in calls if c[0] == "PY"] == [
        ["f0_spread", v, "whisper-phone-vocoder", "speaker.", "pre.", "post.", "duration.blocks."]
        for v in ("1", "0.5", "0")]
    assert [c[3:5] for c in calls if c[1:3] == ["eval", "compare-resynth"]] == [
        ["docs/vocoder-wphone-f0-spread-valid-1.json",
         f"docs/vocoder-wphone-f0-spread-valid-{v}.json"] for v in ("0.5", "0")]
    rc, calls, err = _run_script(root, {**env, "CHOSEN": "0"}, "wphone_f0_spread.sh")
    assert rc == 2 and "drawn-f0-split-allison.json is missing" in err
    _touch(root, "docs/drawn-f0-split-allison.json", "docs/drawn-f0-split-heldout.json")
    rc, calls, err = _run_script(root, {**env, "CHOSEN": "0"}, "wphone_f0_spread.sh")
    assert rc == 0, err
    judged = [c for c in calls if c[1:3] == ["eval", "resynth"]]
    assert [c[c.index("--json") + 1] for c in judged] == [
        "docs/wphone-f0-spread-0-allison.json", "docs/wphone-f0-spread-0-heldout.json"]
    assert all(c[c.index("--vocoder") + 1] == "outputs/wphone-f0-spread-eval/vocoder-0"
               and c[c.index("--methods") + 1] == "hn" for c in judged)
    assert judged[0][judged[0].index("--per-voice") + 1] == "80"
    assert [c[3:5] for c in calls if c[1:3] == ["eval", "compare-resynth"]][-2:] == [
        ["docs/drawn-f0-split-allison.json", "docs/wphone-f0-spread-0-allison.json"],
        ["docs/drawn-f0-split-heldout.json", "docs/wphone-f0-spread-0-heldout.json"]]


def test_wphone_contour_trains_then_judges_on_valid_then_on_unheard_voices(tmp_path):
    """scripts/wphone_contour.sh: refused (exit 2, one line) without the analysed corpus or the
    default's valid report at a spread; trains (or resumes) the intonation model, puts it in
    copies of the default vocoder saved as shipped, one per spread, each judged on the valid
    subset and paired with the default at that spread and as shipped; with CHOSEN, refused
    without the drawn-F0 split's reports, then judged on Allison's 80 and the held-out engines
    and paired with the default as shipped."""
    root, env = _tree(tmp_path)
    rc, calls, err = _run_script(root, env, "wphone_contour.sh")
    assert rc == 2 and err.strip().endswith("train.json is missing: run make whisper-phone")
    assert calls == []
    _touch(root, "data/vocoder/v2-wphone-ctc/train.json", "outputs/f0-spread-eval/valid40.tsv",
           "outputs/f0-spread-eval/valid40.wrd", "docs/vocoder-wphone-f0-spread-valid-1.json",
           "docs/vocoder-wphone-f0-spread-valid-0.json")
    rc, calls, err = _run_script(root, env, "wphone_contour.sh")
    assert rc == 2 and "vocoder-wphone-f0-spread-valid-0.5.json is missing" in err
    train = [c for c in calls if c[1:3] == ["train", "vocoder"]]
    assert len(train) == 1 and "configs/vocoder/contour-cpu.toml" in train[0]
    assert "--train.out=outputs/contour-wphone" in train[0]
    first = calls  # spread 1 judged and paired before spread 0.5 was refused
    _touch(root, "docs/vocoder-wphone-f0-spread-valid-0.5.json")
    rc, calls, err = _run_script(root, env, "wphone_contour.sh")
    assert rc == 0, err
    assert [c[2:] for c in first + calls if c[0] == "PY"] == [
        [f"outputs/wphone-contour-eval/vocoder-{s}", "outputs/contour-wphone/model", s]
        for s in ("1", "1", "0.5", "0")]  # the stand-in python makes no directory: made again
    judged = [c for c in first + calls if c[1:3] == ["eval", "resynth"]]
    assert [c[c.index("--json") + 1] for c in judged] == [
        f"docs/wphone-contour-valid-{s}.json" for s in ("1", "0.5", "0")]
    assert all(c[c.index("--vocoder") + 1] == f"outputs/wphone-contour-eval/vocoder-{s}"
               for c, s in zip(judged, ("1", "0.5", "0")))
    base = "docs/vocoder-wphone-f0-spread-valid-"
    assert _pairs(calls) == [
        [f"{base}1.json", "docs/wphone-contour-valid-1.json"],
        [f"{base}0.5.json", "docs/wphone-contour-valid-0.5.json"],
        [f"{base}1.json", "docs/wphone-contour-valid-0.5.json"],
        [f"{base}0.json", "docs/wphone-contour-valid-0.json"],
        [f"{base}1.json", "docs/wphone-contour-valid-0.json"]]
    rc, calls, err = _run_script(root, {**env, "CHOSEN": "0"}, "wphone_contour.sh")
    assert rc == 2 and "drawn-f0-split-allison.json is missing" in err
    assert not [c for c in calls if c[1:3] == ["eval", "resynth"]]  # valid kept, not rerun
    _touch(root, "docs/drawn-f0-split-allison.json", "docs/drawn-f0-split-heldout.json")
    rc, calls, err = _run_script(root, {**env, "CHOSEN": "0"}, "wphone_contour.sh")
    assert rc == 0, err
    judged = [c for c in calls if c[1:3] == ["eval", "resynth"]]
    assert [c[c.index("--json") + 1] for c in judged] == [
        "docs/wphone-contour-0-allison.json", "docs/wphone-contour-0-heldout.json"]
    assert all(c[c.index("--vocoder") + 1] == "outputs/wphone-contour-eval/vocoder-0"
               and c[c.index("--methods") + 1] == "hn" for c in judged)
    assert judged[0][judged[0].index("--per-voice") + 1] == "80"
    assert _pairs(calls)[-2:] == [
        ["docs/drawn-f0-split-allison.json", "docs/wphone-contour-0-allison.json"],
        ["docs/drawn-f0-split-heldout.json", "docs/wphone-contour-0-heldout.json"]]
    # CONTINUE: Allison's continuations by the default with that vocoder, paired with its own
    rc, calls, err = _run_script(root, {**env, "CHOSEN": "0", "CONTINUE": "1"}, "wphone_contour.sh")
    assert rc == 2 and "switch-wphone-allison-continue.json is missing" in err
    _touch(root, "docs/switch-wphone-allison-continue.json")
    rc, calls, err = _run_script(root, {**env, "CHOSEN": "0", "CONTINUE": "1"}, "wphone_contour.sh")
    assert rc == 0, err
    cont = [c for c in calls if c[1:3] == ["eval", "continue"]]
    assert len(cont) == 1 and cont[0][cont[0].index("--model") + 1] == \
        "outputs/wphone-contour-eval/model-0"
    model = root / "outputs" / "wphone-contour-eval" / "model-0"
    assert os.readlink(model / "vocoder").endswith("outputs/wphone-contour-eval/vocoder-0")
    assert os.readlink(model / "lm").endswith("speechlm/pretrained/whisper-phone-lm")
    assert [c[3:5] for c in calls if c[1:3] == ["eval", "compare-continue"]] == [
        ["docs/switch-wphone-allison-continue.json", "docs/wphone-contour-0-allison-continue.json"]]
    # SHIP: the contour model into the bundled vocoder, at the bundle's spread only
    rc, calls, err = _run_script(root, {**env, "CHOSEN": "0", "SHIP": "1"}, "wphone_contour.sh")
    assert rc == 2 and "SHIP=1 needs CHOSEN=1" in err
    rc, calls, err = _run_script(root, {**env, "CHOSEN": "1", "SHIP": "1"}, "wphone_contour.sh")
    assert rc == 2 and "switch-wphone-allison.json is missing" in err
    _touch(root, "docs/switch-wphone-allison.json")
    rc, calls, err = _run_script(root, {**env, "CHOSEN": "1", "SHIP": "1"}, "wphone_contour.sh")
    assert rc == 0, err
    shipped = [c for c in calls if c[1:3] == ["eval", "resynth"]
               and c[c.index("--json") + 1] == "docs/wphone-contour-shipped-allison.json"]
    assert len(shipped) == 1 and shipped[0][shipped[0].index("--vocoder") + 1] == \
        "whisper-phone-vocoder" and shipped[0][shipped[0].index("--per-voice") + 1] == "0"
    assert ["docs/switch-wphone-allison.json",
            "docs/wphone-contour-shipped-allison.json"] in _pairs(calls)
    assert ["-", "outputs/contour-wphone/model",
            "speechlm/pretrained/whisper-phone-vocoder/contour"] in [c[1:] for c in calls
                                                                      if c[0] == "PY"]



def test_wphone_prompt_contour_builds_the_cache_trains_then_judges_continuations(tmp_path):
    """scripts/wphone_prompt_contour.sh: refused (exit 2, one line) without the corpus, the real
    voice or the drawn-prompt continuation report; builds the analysed corpus when missing,
    trains (or resumes) the prefix-reading intonation model, judges the bundle with the prompt
    spoken with its own F0 against the drawn prompt, then a copy with the model against that;
    HELDOUT adds the held-out engines, SHIP writes the model into the bundled vocoder."""
    root, env = _tree(tmp_path)
    rc, calls, err = _run_script(root, env, "wphone_prompt_contour.sh")
    assert rc == 2 and err.count("\n") == 1 and "corpus.json is missing" in err and calls == []
    _touch(root, "data/corpus-v2/corpus.json", "data/real/allison/allison.tsv")
    rc, calls, err = _run_script(root, env, "wphone_prompt_contour.sh")
    assert rc == 2 and "wphone-contour-1-allison-continue.json is missing" in err
    _touch(root, "docs/wphone-contour-1-allison-continue.json")
    rc, calls, err = _run_script(root, env, "wphone_prompt_contour.sh")
    assert rc == 2 and "wphone-contour-1-allison.json is missing" in err
    _touch(root, "docs/wphone-contour-1-allison.json")
    rc, calls, err = _run_script(root, env, "wphone_prompt_contour.sh")
    assert rc == 0, err
    resynth = [c for c in calls if c[1:3] == ["eval", "resynth"]]
    assert len(resynth) == 1 and resynth[0][resynth[0].index("--vocoder") + 1] == \
        "outputs/wphone-prompt-contour/vocoder" and "80" in resynth[0]
    assert _pairs(calls) == [["docs/wphone-contour-1-allison.json",
                              "docs/prompt-contour-allison.json"]]
    py = [c for c in calls if c[0] == "PY"]
    assert py[0][2:] == ["data/corpus-v2", "data/vocoder/v2-wphone-ctc"]  # the cache built
    assert py[1][1:3] == ["scripts/contour_prefix_gain.py", "outputs/contour-prompt/model"]
    assert py[1][py[1].index("--json") + 1] == "docs/prompt-contour-prefix-gain.json"
    assert py[2][2:] == ["outputs/wphone-prompt-contour/vocoder", "outputs/contour-prompt/model"]
    train = [c for c in calls if c[1:3] == ["train", "vocoder"]]
    assert len(train) == 1 and "configs/vocoder/contour-prompt-cpu.toml" in train[0]
    cont = [c for c in calls if c[1:3] == ["eval", "continue"]]
    assert [c[c.index("--json") + 1] for c in cont] == [
        "docs/prompt-pitch-allison-continue.json", "docs/prompt-contour-allison-continue.json"]
    # a.: a copy of the bundle at drawn_f0_weight 0, as it was judged before weight 1 shipped
    assert cont[0][cont[0].index("--model") + 1] == "outputs/wphone-prompt-contour/weight-0/model"
    assert ["-", "outputs/wphone-prompt-contour/weight-0/vocoder", "0"] in [
        c[1:] for c in calls if c[0] == "PY"]
    assert cont[1][cont[1].index("--model") + 1] == "outputs/wphone-prompt-contour/model"
    model = root / "outputs" / "wphone-prompt-contour" / "model"
    assert os.readlink(model / "vocoder").endswith("outputs/wphone-prompt-contour/vocoder")
    assert [c[3:5] for c in calls if c[1:3] == ["eval", "compare-continue"]] == [
        ["docs/wphone-contour-1-allison-continue.json", "docs/prompt-pitch-allison-continue.json"],
        ["docs/prompt-pitch-allison-continue.json", "docs/prompt-contour-allison-continue.json"]]
    # the cache present: not built again; reports kept; HELDOUT and SHIP
    _touch(root, "data/vocoder/v2-wphone-ctc/valid.json")
    rc, calls, err = _run_script(root, {**env, "HELDOUT": "1", "SHIP": "1"},
                                 "wphone_prompt_contour.sh")
    assert rc == 0, err
    cont = [c for c in calls if c[1:3] == ["eval", "continue"]]
    assert [c[c.index("--json") + 1] for c in cont] == [
        "docs/prompt-pitch-heldout-continue.json", "docs/prompt-contour-heldout-continue.json"]
    assert cont[0][cont[0].index("--vocoder") + 1] == \
        "outputs/wphone-prompt-contour/weight-0/vocoder"
    py = [c[2:] for c in calls if c[0] == "PY"]
    assert ["data/corpus-v2", "data/vocoder/v2-wphone-ctc"] not in py
    assert ["outputs/contour-prompt/model",
            "speechlm/pretrained/whisper-phone-vocoder/contour"] in py
    # WEIGHT: a copy of the bundle speaking its drawn contour itself, judged twice
    rc, calls, err = _run_script(root, {**env, "WEIGHT": "1"}, "wphone_prompt_contour.sh")
    assert rc == 0, err
    assert ["-", "outputs/wphone-prompt-contour/weight-1/vocoder", "1"] in [
        c[1:] for c in calls if c[0] == "PY"]
    judged = [c for c in calls if c[1:3] in (["eval", "continue"], ["eval", "resynth"])]
    assert [c[c.index("--json") + 1] for c in judged] == [
        "docs/drawn-f0-weight-1-allison-continue.json", "docs/drawn-f0-weight-0-allison.json",
        "docs/drawn-f0-weight-1-allison.json"]
    assert [c[3:5] for c in calls if c[1:3] == ["eval", "compare-continue"]][-1] == [
        "docs/prompt-pitch-allison-continue.json", "docs/drawn-f0-weight-1-allison-continue.json"]
    assert _pairs(calls)[-1] == ["docs/drawn-f0-weight-0-allison.json",
                                 "docs/drawn-f0-weight-1-allison.json"]  # judged side by side
    # WEIGHT with HELDOUT: W against the copy at 0 on the held-out engines, both ways (the
    # copy's continuation report is the HELDOUT run's above, kept)
    rc, calls, err = _run_script(root, {**env, "WEIGHT": "1", "HELDOUT": "1"},
                                 "wphone_prompt_contour.sh")
    assert rc == 0, err
    judged = [c for c in calls if c[1:3] in (["eval", "continue"], ["eval", "resynth"])]
    zero, one = (f"outputs/wphone-prompt-contour/weight-{w}/vocoder" for w in (0, 1))
    assert [(c[c.index("--json") + 1], c[c.index("--vocoder") + 1]) for c in judged] == [
        ("docs/drawn-f0-weight-1-heldout-continue.json", one),
        ("docs/drawn-f0-weight-0-heldout.json", zero),
        ("docs/drawn-f0-weight-1-heldout.json", one)]
    assert all(c[c.index("--data") + 1] == "heldout" for c in judged)
    assert ["docs/drawn-f0-weight-0-heldout.json", "docs/drawn-f0-weight-1-heldout.json"] in \
        _pairs(calls)
    assert ["docs/prompt-pitch-heldout-continue.json",
            "docs/drawn-f0-weight-1-heldout-continue.json"] in [
        c[3:5] for c in calls if c[1:3] == ["eval", "compare-continue"]]
    rc, calls, err = _run_script(root, {**env, "SHIP_WEIGHT": "1"}, "wphone_prompt_contour.sh")
    assert rc == 0, err
    assert ["-", "speechlm/pretrained/whisper-phone-vocoder/config.json", "1"] in [
        c[1:] for c in calls if c[0] == "PY"]


def test_lm_phone_text_trains_the_control_and_the_mix_then_scores_both(tmp_path):
    """scripts/lm_phone_text.sh: refused (exit 2, one line) without the corpus or its text pool;
    builds the held-out probes when missing, trains the units-only control on the bundled
    tokenizer's units and the phone-text recipe, then scores each on the probes once."""
    root, env = _tree(tmp_path)
    rc, calls, err = _run_script(root, env, "lm_phone_text.sh")
    assert rc == 2 and err.count("\n") == 1 and "corpus.json is missing" in err and calls == []
    _touch(root, "data/corpus-v2/corpus.json")
    rc, calls, err = _run_script(root, env, "lm_phone_text.sh")
    assert rc == 2 and err.count("\n") == 1 and "sentences.tsv is missing" in err
    _touch(root, "data/corpus-v2/text/sentences.tsv")
    for par in ("", "1"):
        rc, calls, err = _run_script(root, {**env, "PAR": par}, "lm_phone_text.sh")
        assert rc == 0, err
        train = [c for c in calls if c[1:3] == ["train", "lm"]]
        assert [c[c.index("--config") + 1] for c in train] == [
            "configs/lm/whisper-phone-cpu.toml", "configs/lm/whisper-phone-text-cpu.toml"]
        assert "--data.tokenizer=whisper-phone" in train[0]
        assert "--train.out=outputs/lm-wphone-units" in train[0]
        lm = [c for c in calls if c[1:3] == ["eval", "lm"]]
        assert [c[3:5] for c in calls if c[1:3] == ["eval", "compare-lm"]] == [
            ["docs/lm-wphone-units.json", "docs/lm-wphone-text.json"]]  # always rerun
        if par:  # the reports exist: kept
            assert lm == [] and not any(c[1:3] == ["eval", "build-probes"] for c in calls)
            continue
        assert [c[c.index("--model") + 1] for c in lm] == [
            "outputs/lm-wphone-units/model", "outputs/lm-wphone-text/model", "whisper-phone-lm"]
        assert all(c[c.index("--probes") + 1] == "data/probes-v2" for c in lm)
        probes = [c for c in calls if c[1:3] == ["eval", "build-probes"]]
        assert len(probes) == 1 and "pico_us,piper_joe,mbrola_us3" in probes[0]
        _touch(root, "data/probes-v2/syntactic/pairs.tsv")


def test_wphone_words_builds_trains_then_judges_both_heads_and_resumes(tmp_path):
    """scripts/wphone_words.sh: refused (exit 2, one line) without the corpus; synthesizes the
    words, trains the head on them, makes its float16 CTC tokenizer and the candidate (the
    bundled head with an edge pad), judges the three's spelling of the probe items and of
    sentences, then the bundled LM on the bundled and the candidate's units (an adopted copy)
    and pairs them; the vocoder and continue steps judge the same two ways; STEPS picks the
    steps; a rerun trains and judges nothing again."""
    root, env = _tree(tmp_path)
    rc, calls, err = _run_script(root, env, "wphone_words.sh")
    assert rc == 2 and err.count("\n") == 1 and "train.tsv is missing" in err and calls == []
    _touch(root, "data/corpus-v2/train.tsv", "data/real/allison/allison.tsv",
           "data/probes-v2/syntactic/pairs.tsv")
    rc, calls, err = _run_script(root, env, "wphone_words.sh")
    assert rc == 0, err
    tok = "outputs/tokenizers/whisper-phone-pad"
    (words,) = [c for c in calls if c[1:3] == ["corpus", "words"]]
    assert words[words.index("--out") + 1] == "data/words-v2" and "6000" in words
    (enc,) = [c for c in calls if c[1:3] == ["train", "encoder"]]
    assert enc[enc.index("--config") + 1] == "configs/encoder/whisper-phone-words-cpu.toml"
    assert "--data.words=data/words-v2" in enc
    (ctc,) = [c for c in calls if c[1:3] == ["train", "tokenizer"]]
    assert ctc[ctc.index("--features") + 1] == "outputs/encoder-whisper-phone-words/model"
    assert ctc[ctc.index("--edge-pad") + 1] == "0.5"
    assert [c[1:] for c in calls if c[0] == "PY" and c[1] == "-"] == [
        ["-", "outputs/wphone-words/tokenizer-f32", "outputs/tokenizers/whisper-phone-words"],
        ["-", tok]]  # the words head in float16; the candidate (the bundled, edge-padded)
    items = [c for c in calls if c[0] == "PY" and "items_manifest" in " ".join(c)]
    assert [c[-1] for c in items] == ["data/probes-v2/lexical/pairs.tsv",
                                      "data/probes-v2/syntactic/pairs.tsv"]
    evs = [c for c in calls if c[1:3] == ["eval", "tokenizer"]]
    assert [[c[i + 1] for i, a in enumerate(c) if a == "--tokenizer"] for c in evs] == [
        ["whisper-phone", tok, "outputs/tokenizers/whisper-phone-words"]] * 2
    assert [evs[0][i + 1] for i, a in enumerate(evs[0]) if a == "--manifest"] == [
        "data/probes-v2/lexical/items.tsv", "data/probes-v2/syntactic/items.tsv"]
    adopt = [c for c in calls if c[1] == "adopt-units"]
    assert [(c[2], c[c.index("--tokenizer") + 1], c[c.index("--out") + 1]) for c in adopt] == [
        ("whisper-phone-lm", tok, "outputs/wphone-words/lm"),
        ("whisper-phone-vocoder", tok, "outputs/wphone-words/vocoder")]
    lm = [c for c in calls if c[1:3] == ["eval", "lm"]]
    assert [c[c.index("--model") + 1] for c in lm] == ["whisper-phone-lm",
                                                       "outputs/wphone-words/lm"]
    assert "--tokenizer" not in lm[0] and lm[1][lm[1].index("--tokenizer") + 1] == tok
    assert lm[1][lm[1].index("--units-dir") + 1] == "data/units/v2-wphone-pad-dedup"
    assert [c[3:5] for c in calls if c[1:3] == ["eval", "compare-lm"]] == [
        ["docs/wphone-words-base-lm.json", "docs/wphone-words-lm.json"]]
    assert calls.index(words) < calls.index(enc) < calls.index(ctc) < calls.index(evs[0]) < \
        calls.index(adopt[0]) < calls.index(lm[0])
    judged = [c for c in calls if c[1:3] == ["eval", "resynth"]]
    assert [(c[c.index("--vocoder") + 1], c[c.index("--tokenizer") + 1]) for c in judged] == [
        ("whisper-phone-vocoder", "whisper-phone")] * 2 + [
        ("outputs/wphone-words/vocoder", tok)] * 2  # each vocoder reads its own units
    assert _pairs(calls) == [
        ["docs/wphone-words-base-allison.json", "docs/wphone-words-new-allison.json"],
        ["docs/wphone-words-base-heldout.json", "docs/wphone-words-new-heldout.json"]]
    cont = [c for c in calls if c[1:3] == ["eval", "continue"]]
    assert [c[c.index("--model") + 1] for c in cont] == ["default", "outputs/wphone-words/model"]
    assert sorted(p.name for p in (root / "outputs/wphone-words/model").iterdir()) == [
        "lm", "tokenizer", "vocoder"]

    _touch(root, "data/words-v2/words.json", "data/probes-v2/lexical/items.tsv",
           "data/probes-v2/syntactic/items.tsv")
    _exported(root / "outputs/tokenizers", "whisper-phone-words", "whisper-phone-pad")
    _exported(root / "outputs/wphone-words", "lm", "vocoder")
    rc, calls, err = _run_script(root, env, "wphone_words.sh")
    assert rc == 0, err
    assert not [c for c in calls if c[1] in ("train", "corpus", "adopt-units") or c[0] == "PY"
                or c[1:3] in (["eval", "tokenizer"], ["eval", "lm"], ["eval", "resynth"],
                              ["eval", "continue"])]
    assert [c[1:3] for c in calls] == [["eval", "compare-lm"], ["eval", "compare-resynth"],
                                       ["eval", "compare-resynth"],
                                       ["eval", "compare-continue"]]  # always redone
    rc, calls, err = _run_script(root, {**env, "STEPS": "lm"}, "wphone_words.sh")
    assert rc == 0 and [c[1:3] for c in calls] == [["eval", "compare-lm"]]
    # retrain: the bundled LM's recipe on the candidate's units, judged against the adopted LM
    # (the lm step's report: refused without it) and the bundled one
    (root / "docs/wphone-words-lm.json").unlink()
    rc, calls, err = _run_script(root, {**env, "STEPS": "retrain"}, "wphone_words.sh")
    assert rc == 2 and err.count("\n") == 1 and "run STEPS=lm first" in err and calls == []
    rc, calls, err = _run_script(root, {**env, "STEPS": "lm retrain"}, "wphone_words.sh")
    assert rc == 0, err
    # and its calibration: the bundled recipe on the bundled units with seed 1
    (tr, seed) = [c for c in calls if c[1:3] == ["train", "lm"]]
    assert tr[tr.index("--config") + 1] == "configs/lm/whisper-phone-pad-cpu.toml"
    assert seed[seed.index("--config") + 1] == "configs/lm/whisper-phone-cpu.toml"
    assert "--train.seed=1" in seed and "--train.out=outputs/lm-wphone-seed1" in seed
    (lm, ev, ev1) = [c for c in calls if c[1:3] == ["eval", "lm"]]  # the lm step's remade
    assert lm[lm.index("--model") + 1] == "outputs/wphone-words/lm"
    assert ev[ev.index("--model") + 1] == "outputs/lm-wphone-pad/model"
    assert ev[ev.index("--units-dir") + 1] == "data/units/v2-wphone-pad-dedup"
    assert ev1[ev1.index("--model") + 1] == "outputs/lm-wphone-seed1/model"
    assert "--units-dir" not in ev1 and "--tokenizer" not in ev1  # the bundled units
    assert [c[3:5] for c in calls if c[1:3] == ["eval", "compare-lm"]] == [
        ["docs/wphone-words-base-lm.json", "docs/wphone-words-lm.json"],
        ["docs/wphone-words-lm.json", "docs/wphone-words-retrain-lm.json"],
        ["docs/wphone-words-base-lm.json", "docs/wphone-words-retrain-lm.json"],
        ["docs/wphone-words-base-lm.json", "docs/wphone-words-seed1-lm.json"]]
    assert calls.index(tr) < calls.index(ev) < calls.index(seed) < calls.index(ev1)
    rc, calls, err = _run_script(root, {**env, "STEPS": "none", "SHIP": "1"}, "wphone_words.sh")
    assert rc == 0, err
    assert [c[1:] for c in calls if c[0] == "PY"] == [["-", "speechlm/pretrained/whisper-phone"]]
    assert [c[1:] for c in calls if c[0] == "SL"] == [
        ["adopt-units", st, "--tokenizer", "whisper-phone", "--out", f"speechlm/pretrained/{st}"]
        for st in ("whisper-phone-lm", "whisper-phone-vocoder")]
    # once the bundle reads with a blank penalty, its reports would judge the pad on top of it
    cfg = root / "speechlm/pretrained/whisper-phone/config.json"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('{"encoder": {"blank_penalty": 1.0}}')
    rc, calls, err = _run_script(root, env, "wphone_words.sh")
    assert rc == 2 and err.count("\n") == 1 and "reads with a blank penalty" in err
    assert calls == []
    rc, calls, err = _run_script(root, {**env, "STEPS": "none", "SHIP": "1"}, "wphone_words.sh")
    assert rc == 0 and not [c for c in calls if c[1] == "eval"], err


def _wphone_steps(calls: list[list[str]], tok: str, out: str
                  ) -> tuple[list[list[str]], list[list[str]], list[list[str]]]:
    """Assert the steps shared through ``heldout_reports.sh`` (``wphone_spelling``,
    ``wphone_lm``) by a script judging the tokenizer ``tok``: its spelling against the bundled
    one on sentences, then on the probe items; the bundled LM and vocoder adopted onto its units
    in ``out``; the bundled LM, then the adopted one reading ``tok``. Returns the spelling,
    adoption and LM calls."""
    evs = [c for c in calls if c[1:3] == ["eval", "tokenizer"]]  # valid's report exists
    assert [[c[i + 1] for i, a in enumerate(c) if a == "--tokenizer"] for c in evs] == [
        ["whisper-phone", tok]] * 2
    assert [[c[i + 1] for i, a in enumerate(c) if a == "--manifest"] for c in evs] == [
        ["test", "heldout", "data/real/allison/allison.tsv"],
        ["data/probes-v2/lexical/items.tsv", "data/probes-v2/syntactic/items.tsv"]]
    adopt = [c for c in calls if c[1] == "adopt-units"]
    assert [(c[2], c[c.index("--tokenizer") + 1], c[c.index("--out") + 1]) for c in adopt] == [
        ("whisper-phone-lm", tok, f"{out}/lm"), ("whisper-phone-vocoder", tok, f"{out}/vocoder")]
    lm = [c for c in calls if c[1:3] == ["eval", "lm"]]
    assert [c[c.index("--model") + 1] for c in lm] == ["whisper-phone-lm", f"{out}/lm"]
    assert "--tokenizer" not in lm[0] and lm[1][lm[1].index("--tokenizer") + 1] == tok
    return evs, adopt, lm


def test_wphone_blank_chooses_a_penalty_on_valid_then_judges_it_once_and_resumes(tmp_path):
    """scripts/wphone_blank.sh: refused (exit 2, one line) without the corpus; the bundled
    tokenizer read with each blank penalty, all judged on valid against it; nothing judged on
    held-out voices when the bundled is chosen; else the chosen one (and only it) against the
    bundled: spelling of sentences and of the probe items, the bundled LM and vocoder adopted
    onto its units, the continuations, each paired with the bundled's reports; a rerun judges
    nothing again."""
    root, env = _tree(tmp_path)
    rc, calls, err = _run_script(root, env, "wphone_blank.sh")
    assert rc == 2 and err.count("\n") == 1 and "train.tsv is missing" in err and calls == []
    _touch(root, "data/corpus-v2/train.tsv", "data/real/allison/allison.tsv",
           "data/probes-v2/syntactic/pairs.tsv")
    chosen = root / "outputs/wphone-blank/chosen"
    chosen.parent.mkdir(parents=True)
    chosen.write_text("whisper-phone\n")  # what the choice writes when no penalty helps
    rc, calls, err = _run_script(root, env, "wphone_blank.sh")
    assert rc == 0 and "nothing to judge" in err
    made = [c[2:] for c in calls if c[0] == "PY" and c[1] == "-"]
    assert made[:3] == [[f"outputs/tokenizers/whisper-phone-bp{p}", p] for p in ("0.5", "1", "2")]
    assert made[3] == ["docs/wphone-blank-valid.json", "outputs/wphone-blank/chosen"]
    (valid,) = [c for c in calls if c[1:3] == ["eval", "tokenizer"]]
    assert [valid[i + 1] for i, a in enumerate(valid) if a == "--tokenizer"] == [
        "whisper-phone"] + [f"outputs/tokenizers/whisper-phone-bp{p}" for p in ("0.5", "1", "2")]
    assert valid[valid.index("--manifest") + 1] == "valid" and valid.count("--manifest") == 1
    assert not [c for c in calls if c[1] in ("adopt-units", "eval") and c is not valid]

    tok = "outputs/tokenizers/whisper-phone-bp1"
    chosen.write_text(tok + "\n")
    rc, calls, err = _run_script(root, env, "wphone_blank.sh")
    assert rc == 0, err
    evs, adopt, lm = _wphone_steps(calls, tok, "outputs/wphone-blank")
    assert lm[1][lm[1].index("--units-dir") + 1] == "data/units/v2-wphone-blank-dedup"
    assert [c[3:5] for c in calls if c[1:3] == ["eval", "compare-lm"]] == [
        ["docs/wphone-words-base-lm.json", "docs/wphone-blank-lm.json"]]
    judged = [c for c in calls if c[1:3] == ["eval", "resynth"]]
    assert [(c[c.index("--vocoder") + 1], c[c.index("--tokenizer") + 1]) for c in judged] == [
        ("whisper-phone-vocoder", "whisper-phone")] * 2 + [
        ("outputs/wphone-blank/vocoder", tok)] * 2  # each vocoder reads its own units
    assert _pairs(calls) == [
        ["docs/wphone-words-base-allison.json", "docs/wphone-blank-allison.json"],
        ["docs/wphone-words-base-heldout.json", "docs/wphone-blank-heldout.json"]]
    cont = [c for c in calls if c[1:3] == ["eval", "continue"]]
    assert [c[c.index("--model") + 1] for c in cont] == ["default", "outputs/wphone-blank/model"]
    assert {p.name: os.readlink(p) for p in (root / "outputs/wphone-blank/model").iterdir()} == {
        "tokenizer": str(root / tok), "lm": str(root / "outputs/wphone-blank/lm"),
        "vocoder": str(root / "outputs/wphone-blank/vocoder")}
    assert calls.index(evs[0]) < calls.index(adopt[0]) < calls.index(lm[0]) < \
        calls.index(judged[0]) < calls.index(cont[0])

    _touch(root, "data/probes-v2/lexical/items.tsv")
    _exported(root / "outputs/tokenizers", *(f"whisper-phone-bp{p}" for p in ("0.5", "1", "2")))
    _exported(root / "outputs/wphone-blank", "lm", "vocoder")
    rc, calls, err = _run_script(root, env, "wphone_blank.sh")
    assert rc == 0, err
    assert [c[1:3] if c[0] == "SL" else c[1:] for c in calls] == [
        ["-", "docs/wphone-blank-valid.json", "outputs/wphone-blank/chosen"],  # the choice
        ["eval", "compare-lm"], ["eval", "compare-resynth"], ["eval", "compare-resynth"],
        ["eval", "compare-continue"]]  # always redone
    rc, calls, err = _run_script(root, {**env, "STEPS": "lm"}, "wphone_blank.sh")
    assert rc == 0 and [c[1:3] for c in calls if c[0] == "SL"] == [["eval", "compare-lm"]]
    # SHIP=1: the bundled tokenizer takes the chosen penalty, the LM and vocoder its units
    rc, calls, err = _run_script(root, {**env, "STEPS": "none", "SHIP": "1"}, "wphone_blank.sh")
    assert rc == 0, err
    assert [c[1:] for c in calls if c[0] == "PY"][-1] == [
        "-", "speechlm/pretrained/whisper-phone", tok]
    assert [c[1:] for c in calls if c[0] == "SL"] == [
        ["adopt-units", st, "--tokenizer", "whisper-phone", "--out", f"speechlm/pretrained/{st}"]
        for st in ("whisper-phone-lm", "whisper-phone-vocoder")]
    # once shipped, judging against "the bundle" would judge the penalty against itself
    cfg = root / "speechlm/pretrained/whisper-phone/config.json"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('{"encoder": {"blank_penalty": 1.0}}')
    rc, calls, err = _run_script(root, env, "wphone_blank.sh")
    assert rc == 2 and err.count("\n") == 1 and "already reads with a blank penalty" in err
    assert calls == []
    rc, calls, err = _run_script(root, {**env, "STEPS": "none", "SHIP": "1"}, "wphone_blank.sh")
    assert rc == 0, err


def test_wphone_vocoder_tune_trains_the_fine_tune_and_its_control_then_pairs_each_with_its_base(
        tmp_path):
    """scripts/wphone_vocoder_tune.sh: refused (exit 2, one line) without the corpus or the
    vocoder's cache; the fine-tune on the bundled units and the control on the units without the
    penalty (from the bundle adopted back onto them) trained side by side and exported into
    copies of their starting vocoders; each judged on its own units and paired with the bundle's
    report on the same units; refused when those reports are missing; the drawn-F0 path of the
    fine-tune against the bundle's on 80 of Allison's prompts; the default model speaking
    through it on Allison's continuations against the default's report (those two steps only
    when asked); a rerun after the exports trains nothing again; SHIP=1 copies the fine-tune
    over the bundled vocoder, and the judging steps are refused after it."""
    root, env = _tree(tmp_path)
    rc, calls, err = _run_script(root, env, "wphone_vocoder_tune.sh")
    assert rc == 2 and err.count("\n") == 1 and "train.tsv is missing" in err and calls == []
    _touch(root, "data/corpus-v2/train.tsv", "data/real/allison/allison.tsv")
    rc, calls, err = _run_script(root, env, "wphone_vocoder_tune.sh")
    assert rc == 2 and err.count("\n") == 1 and "v2-wphone-ctc is missing" in err and calls == []
    _touch(root, "data/vocoder/v2-wphone-ctc/train.json")
    rc, calls, err = _run_script(root, env, "wphone_vocoder_tune.sh")
    assert rc == 2 and "docs/wphone-words-base-allison.json is missing" in err
    bp0, s = "outputs/tokenizers/whisper-phone-bp0", "outputs/wphone-vocoder-tune"
    assert [c[2:] for c in calls if c[0] == "PY"][0] == [bp0]
    assert [c[1:] for c in calls if c[1] == "adopt-units"] == [
        ["adopt-units", "whisper-phone-vocoder", "--tokenizer", bp0, "--out", f"{s}/base0"]]
    assert len([c for c in calls if c[1:3] == ["train", "vocoder"]]) == 2
    trains = {next(a for a in c if a.startswith("--train.out=")): c
              for c in calls if c[1:3] == ["train", "vocoder"]}
    tune, tune0 = (trains[f"--train.out=outputs/vocoder-wphone-{r}"] for r in ("tune", "tune0"))
    assert all(c[c.index("--config") + 1] == "configs/vocoder/whisper-phone-tune-cpu.toml"
               for c in (tune, tune0))
    assert not any(a.startswith(("--model.init", "--data.tokenizer")) for a in tune)
    assert {f"--model.init={s}/base0", f"--data.tokenizer={bp0}",
            "--data.cache=data/vocoder/v2-wphone-ctc", "--data.feats_from="} <= set(tune0)
    exports = [c for c in calls if c[0] == "PY"][1:]
    assert max(calls.index(tune), calls.index(tune0)) < calls.index(exports[0])
    exports = [c[2:6] for c in exports]
    assert exports == [["outputs/vocoder-wphone-tune", f"{s}/tune", "whisper-phone-vocoder",
                        "speaker.,pre.,post.,duration.blocks."],
                       ["outputs/vocoder-wphone-tune0", f"{s}/tune0", f"{s}/base0",
                        "speaker.,pre.,post.,duration.blocks."]]
    assert "--data.corpus=data/corpus-v2" in tune and not [c for c in calls if c[1] == "eval"]

    _touch(root, *(f"docs/wphone-{st}-{set_}.json" for st in ("words-base", "blank")
                   for set_ in ("allison", "heldout")))
    rc, calls, err = _run_script(root, {**env, "STEPS": "continue"}, "wphone_vocoder_tune.sh")
    assert rc == 2 and "docs/wphone-blank-continue.json is missing" in err and calls == []
    _touch(root, "docs/wphone-blank-continue.json")
    _exported(root / "outputs/tokenizers", "whisper-phone-bp0")
    _exported(root / s, "base0", "tune", "tune0")
    rc, calls, err = _run_script(root, env, "wphone_vocoder_tune.sh")  # default: train judge
    assert rc == 0 and not [c for c in calls if c[1:3] == ["eval", "continue"]], err
    assert len([c for c in calls if c[1:3] == ["eval", "resynth"]]) == 4
    for f in (root / "docs").glob("wphone-vocoder-tune*"):
        f.unlink()
    rc, calls, err = _run_script(root, {**env, "STEPS": "train judge drawn continue"},
                                 "wphone_vocoder_tune.sh")
    assert rc == 0, err
    assert not [c for c in calls if c[0] == "PY" or c[1] in ("train", "adopt-units")]
    judged = [c for c in calls if c[1:3] == ["eval", "resynth"]]
    assert [(c[c.index("--vocoder") + 1], c[c.index("--tokenizer") + 1]) for c in judged[:4]] == [
        (f"{s}/tune", "whisper-phone")] * 2 + [(f"{s}/tune0", bp0)] * 2
    drawn = judged[4:]
    assert [c[c.index("--vocoder") + 1] for c in drawn] == ["whisper-phone-vocoder", f"{s}/tune"]
    assert all(c[c.index("--methods") + 1] == "hn" and c[c.index("--per-voice") + 1] == "80"
               and "--tokenizer" not in c for c in drawn)  # no source F0, the bundled units
    assert _pairs(calls)[-1] == ["docs/wphone-vocoder-tune-base-drawn.json",
                                 "docs/wphone-vocoder-tune-drawn.json"]
    (cont,) = [c for c in calls if c[1:3] == ["eval", "continue"]]
    assert cont[cont.index("--model") + 1] == f"{s}/model"
    assert {p.name: os.readlink(p) for p in (root / s / "model").iterdir()} == {
        "tokenizer": str(root / "speechlm/pretrained/whisper-phone"),
        "lm": str(root / "speechlm/pretrained/whisper-phone-lm"), "vocoder": str(root / s / "tune")}
    assert [c[3:5] for c in calls if c[1:3] == ["eval", "compare-continue"]] == [
        ["docs/wphone-blank-continue.json", "docs/wphone-vocoder-tune-continue.json"]]
    assert _pairs(calls)[:4] == [
        ["docs/wphone-blank-allison.json", "docs/wphone-vocoder-tune-allison.json"],
        ["docs/wphone-words-base-allison.json", "docs/wphone-vocoder-tune0-allison.json"],
        ["docs/wphone-blank-heldout.json", "docs/wphone-vocoder-tune-heldout.json"],
        ["docs/wphone-words-base-heldout.json", "docs/wphone-vocoder-tune0-heldout.json"]]
    rc, calls, err = _run_script(root, {**env, "STEPS": "judge drawn continue"},
                                 "wphone_vocoder_tune.sh")  # judged: only the pairs
    assert rc == 0 and [c[1:3] for c in calls] == [["eval", "compare-resynth"]] * 5 + [
        ["eval", "compare-continue"]]

    (root / s / "tune" / "model.safetensors").write_text("weights")
    bundled = root / "speechlm/pretrained/whisper-phone-vocoder"
    bundled.mkdir(parents=True)
    (bundled / "stale").write_text("")
    rc, calls, err = _run_script(root, {**env, "STEPS": "none", "SHIP": "1"},
                                 "wphone_vocoder_tune.sh")
    assert rc == 0 and calls == [], err
    assert sorted(p.name for p in bundled.iterdir()) == ["config.json", "model.safetensors"]
    (bundled / "config.json").write_text('{"training": {"fine_tune": {"steps": 1000}}}')
    for steps in ("judge", "drawn", "continue"):
        rc, calls, err = _run_script(root, {**env, "STEPS": steps}, "wphone_vocoder_tune.sh")
        assert rc == 2 and err.count("\n") == 1 and "fine-tune already" in err and calls == []
    shutil.rmtree(root / s / "tune")
    rc, calls, err = _run_script(root, {**env, "STEPS": "none", "SHIP": "1"},
                                 "wphone_vocoder_tune.sh")
    assert rc == 2 and err.count("\n") == 1 and "run the train step first" in err


def test_wphone_unit_rate_scales_the_lms_trained_rate_by_the_measured_ratio(tmp_path):
    """scripts/wphone_unit_rate.sh: refused (exit 2, one line) without the corpus; the reading
    the LM trained on (TRAINED, by default the bundled head without the penalty) and the
    bundled head judged on the same training utterances; the bundled LM's trained-on rate (its
    adoption record's when it has one) times their ratio given to ``adopt-units`` in place;
    refused (exit 2, one line) when TRAINED is missing or reads another space than the LM's
    origin; a report of other spaces is made again."""
    root, env = _tree(tmp_path)
    rc, calls, err = _run_script(root, env, "wphone_unit_rate.sh")
    assert rc == 2 and err.count("\n") == 1 and "train.tsv is missing" in err and calls == []
    _touch(root, "data/corpus-v2/train.tsv")
    bp0 = "outputs/tokenizers/whisper-phone-bp0"
    rc, calls, err = _run_script(root, env, "wphone_unit_rate.sh")  # bp0 never made (stand-in)
    assert rc == 2 and err.count("\n") == 1 and "no tokenizer directory" in err
    assert [c[1:] for c in calls] == [["-", bp0]]  # made from the bundled head
    _exported(root / "outputs/tokenizers", "whisper-phone-bp0")
    rc, calls, err = _run_script(root, env, "wphone_unit_rate.sh")  # the stand-in's empty report
    (ev,) = [c for c in calls if c[1:3] == ["eval", "tokenizer"]]
    assert [ev[i + 1] for i, a in enumerate(ev) if a == "--tokenizer"] == [bp0, "whisper-phone"]
    assert ev[ev.index("--manifest") + 1] == "train" and "--no-ued" in ev
    assert [c[1:3] for c in calls if c[0] == "PY"][0] == ["-", bp0]  # the origin checked
    (root / f"{bp0}/config.json").write_text('{"unit_space": "wphone-a-ctc-k41-0"}')
    bundled = root / "speechlm/pretrained/whisper-phone/config.json"
    bundled.parent.mkdir(parents=True)
    bundled.write_text('{"unit_space": "wphone-a-ctc-bp1-k41-0"}')
    report = root / "docs/wphone-unit-rate.json"
    report.write_text(json.dumps({"reports": [
        {"tokenizer": bp0, "unit_space": "wphone-a-ctc-k41-0", "units_per_second": 11.0},
        {"tokenizer": "whisper-phone", "unit_space": "wphone-a-ctc-bp1-k41-0",
         "units_per_second": 11.55}]}))
    lm = root / "speechlm/pretrained/whisper-phone-lm/config.json"
    lm.parent.mkdir(parents=True)
    env = {**env, "PY": sys.executable}  # the check and the rate run for real
    adopted = {"units_per_second": 10.5, "unit_space": "wphone-a-ctc-bp1-k41-0",
               "adopted_units": {"units_per_second": 12.0, "from": "wphone-a-ctc-k41-0"}}
    for cfg, rate in (({"units_per_second": 10.0, "unit_space": "wphone-a-ctc-k41-0"}, "10.500"),
                      (adopted, "12.600")):
        lm.write_text(json.dumps(cfg))
        rc, calls, err = _run_script(root, env, "wphone_unit_rate.sh")
        assert rc == 0, err
        assert [c[1:] for c in calls] == [[
            "adopt-units", "whisper-phone-lm", "--tokenizer", "whisper-phone", "--out",
            "speechlm/pretrained/whisper-phone-lm", "--units-per-second", rate]]
    # TRAINED: missing, or reading another space than the LM's origin
    rc, calls, err = _run_script(root, {**env, "TRAINED": "outputs/old"}, "wphone_unit_rate.sh")
    assert rc == 2 and err.count("\n") == 1 and "TRAINED=outputs/old is no tokenizer" in err
    _exported(root / "outputs", "old")
    (root / "outputs/old/config.json").write_text('{"unit_space": "wphone-b-ctc-k41-1"}')
    rc, calls, err = _run_script(root, {**env, "TRAINED": "outputs/old"}, "wphone_unit_rate.sh")
    assert rc == 2 and err.count("\n") == 1 and "measured on wphone-a-ctc-k41-0" in err
    assert calls == [] and report.exists()
    # a new bundled head: the report of the old one is made again
    bundled.write_text('{"unit_space": "wphone-c-ctc-bp1-k41-2"}')
    rc, calls, err = _run_script(root, env, "wphone_unit_rate.sh")
    assert "made again" in err and json.loads(report.read_text()) == {}  # the stand-in's new one
    (ev,) = [c for c in calls if c[1:3] == ["eval", "tokenizer"]]
    assert [ev[i + 1] for i, a in enumerate(ev) if a == "--tokenizer"] == [bp0, "whisper-phone"]


def test_wphone_head_more_trains_the_head_on_then_judges_it_against_the_bundled_head(tmp_path):
    """scripts/wphone_head_more.sh: refused (exit 2, one line) without the corpus; the bundled
    head trained on, its CTC tokenizer read with the bundle's penalty, judged on valid against
    the bundled; nothing more when it spells valid no better; else its spelling, the bundled LM
    and vocoder adopted onto its units and each paired with the bundle's report on its own
    units; refused without the vocoder's base reports; a rerun judges nothing again; SHIP=1
    copies it over the bundled tokenizer, after which the steps are refused."""
    root, env = _tree(tmp_path)
    rc, calls, err = _run_script(root, env, "wphone_head_more.sh")
    assert rc == 2 and err.count("\n") == 1 and "train.tsv is missing" in err and calls == []
    _touch(root, "data/corpus-v2/train.tsv", "data/real/allison/allison.tsv",
           "data/probes-v2/syntactic/pairs.tsv")
    cfg = root / "speechlm/pretrained/whisper-phone/config.json"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('{"unit_space": "wphone-encoder-whisper-phone-ctc-bp1-k41-14a8ee2f"}')
    tok = "outputs/tokenizers/whisper-phone-more"
    chosen = root / "outputs/wphone-head-more/chosen"
    chosen.parent.mkdir(parents=True)
    chosen.write_text("whisper-phone\n")  # what the choice writes when it is no better
    rc, calls, err = _run_script(root, env, "wphone_head_more.sh")
    assert rc == 2 and "docs/wphone-blank-allison.json is missing" in err
    assert err.count("\n") == 1 and calls == []  # before any work
    _touch(root, "docs/wphone-blank-allison.json", "docs/wphone-blank-heldout.json")
    rc, calls, err = _run_script(root, env, "wphone_head_more.sh")
    assert rc == 0 and "spells valid no better" in err
    sl = [c for c in calls if c[0] == "SL"]
    train, ctc, valid = sl
    assert train[1:4] == ["train", "encoder", "--config"] and \
        train[4] == "configs/encoder/whisper-phone-more-cpu.toml" and \
        "--train.out=outputs/encoder-whisper-phone-more" in train
    assert ctc[1:3] == ["train", "tokenizer"] and \
        ctc[ctc.index("--features") + 1] == "outputs/encoder-whisper-phone-more/model" and \
        ctc[ctc.index("--layer") + 1] == "ctc"
    assert [c[2:] for c in calls if c[0] == "PY"] == [
        ["outputs/wphone-head-more/ctc", tok],
        ["docs/wphone-more-valid.json", "outputs/wphone-head-more/chosen"]]
    assert [valid[i + 1] for i, a in enumerate(valid) if a == "--tokenizer"] == [
        "whisper-phone", tok]
    assert valid[valid.index("--manifest") + 1] == "valid" and valid.count("--manifest") == 1

    _exported(root / "outputs/tokenizers", "whisper-phone-more")
    chosen.write_text(tok + "\n")
    rc, calls, err = _run_script(root, env, "wphone_head_more.sh")
    assert rc == 0, err
    assert not [c for c in calls if c[1] == "train"]  # its tokenizer exists
    _wphone_steps(calls, tok, "outputs/wphone-head-more")
    assert [c[3:5] for c in calls if c[1:3] == ["eval", "compare-lm"]] == [
        ["docs/wphone-more-base-lm.json", "docs/wphone-more-lm.json"]]
    judged = [c for c in calls if c[1:3] == ["eval", "resynth"]]
    assert [(c[c.index("--vocoder") + 1], c[c.index("--tokenizer") + 1]) for c in judged] == [
        ("outputs/wphone-head-more/vocoder", tok)] * 2
    assert _pairs(calls) == [
        ["docs/wphone-blank-allison.json", "docs/wphone-more-allison.json"],
        ["docs/wphone-blank-heldout.json", "docs/wphone-more-heldout.json"]]
    assert not [c for c in calls if c[1:3] == ["eval", "continue"]]  # not in the default STEPS
    rc, calls, err = _run_script(root, {**env, "STEPS": "continue"}, "wphone_head_more.sh")
    assert rc == 2 and "wphone-blank-continue.json is missing" in err and calls == []
    _touch(root, "docs/wphone-blank-continue.json")
    _touch(root, "data/probes-v2/lexical/items.tsv")
    _exported(root / "outputs/wphone-head-more", "lm", "vocoder")
    every = {**env, "STEPS": "tokenizer lm vocoder continue"}
    rc, calls, err = _run_script(root, every, "wphone_head_more.sh")
    assert rc == 0, err
    cont = [c for c in calls if c[1:3] == ["eval", "continue"]]
    assert [c[c.index("--model") + 1] for c in cont] == ["outputs/wphone-head-more/model"]
    assert [c[3:5] for c in calls if c[1:3] == ["eval", "compare-continue"]] == [
        ["docs/wphone-blank-continue.json", "docs/wphone-more-continue.json"]]
    rc, calls, err = _run_script(root, every, "wphone_head_more.sh")
    assert rc == 0, err
    assert [c[1:3] if c[0] == "SL" else c[1:] for c in calls] == [
        ["-", "docs/wphone-more-valid.json", "outputs/wphone-head-more/chosen"],  # the choice
        ["eval", "compare-lm"], ["eval", "compare-resynth"], ["eval", "compare-resynth"],
        ["eval", "compare-continue"]]  # always redone
    assert {p.name: os.readlink(p) for p in (root / "outputs/wphone-head-more/model").iterdir()} \
        == {"tokenizer": str(root / tok), "lm": str(root / "outputs/wphone-head-more/lm"),
            "vocoder": str(root / "outputs/wphone-head-more/vocoder")}
    # SHIP=1: the new head becomes the bundled tokenizer's, the LM and vocoder adopt its units
    rc, calls, err = _run_script(root, {**env, "STEPS": "none", "SHIP": "1"},
                                 "wphone_head_more.sh")
    old = "outputs/wphone-head-more/trained-bp0"
    assert [c[1:3] for c in calls if c[0] == "PY"] == [
        ["-", "docs/wphone-more-valid.json"],  # the choice: only if better
        ["-", old],  # the bundled head kept first, read without the penalty
        ["-", tok]]  # copied over the bundled tokenizer
    assert rc == 2 and "TRAINED=outputs/wphone-head-more/trained-bp0 is no tokenizer" in err
    _exported(root / "outputs/wphone-head-more", "trained-bp0")  # what the stand-in did not save
    rc, calls, err = _run_script(root, {**env, "STEPS": "none", "SHIP": "1"},
                                 "wphone_head_more.sh")
    assert rc == 0, err
    assert [c[1:3] for c in calls if c[0] == "PY"] == [
        ["-", "docs/wphone-more-valid.json"],  # the choice: only if better
        ["-", tok],  # copied over the bundled tokenizer (the head it replaces kept)
        ["-", old],  # wphone_unit_rate.sh: the LM's origin checked ...
        ["-", "docs/wphone-unit-rate.json"]]  # ... and its rate measured against it
    assert [c[c.index("--tokenizer") + 1] for c in calls if c[1:3] == ["eval", "tokenizer"]] \
        == [old]
    adopts = [c[1:7] for c in calls if c[1] == "adopt-units"]
    assert adopts == [
        ["adopt-units", st, "--tokenizer", "whisper-phone", "--out", f"speechlm/pretrained/{st}"]
        for st in ("whisper-phone-lm", "whisper-phone-vocoder", "whisper-phone-lm")]
    assert "--units-per-second" in [c for c in calls if c[1] == "adopt-units"][-1]
    cfg.write_text('{"unit_space": "wphone-encoder-whisper-phone-more-ctc-bp1-k41-0badc0de"}')
    rc, calls, err = _run_script(root, env, "wphone_head_more.sh")
    assert rc == 2 and err.count("\n") == 1 and "no longer 14a8ee2f" in err and calls == []
    # shipped again after the switch: the kept head is reused; without it, refused
    rc, calls, err = _run_script(root, {**env, "STEPS": "none", "SHIP": "1"},
                                 "wphone_head_more.sh")
    assert rc == 0 and [c[1:3] for c in calls if c[0] == "PY"][1] == ["-", tok], err
    shutil.rmtree(root / old)
    rc, calls, err = _run_script(root, {**env, "STEPS": "none", "SHIP": "1"},
                                 "wphone_head_more.sh")
    assert rc == 2 and err.count("\n") == 1 and "was not kept" in err
    assert [c[1:3] for c in calls] == [["-", "docs/wphone-more-valid.json"]]


def test_lm_nbest_scores_the_probes_at_each_beam_and_pairs_them_with_the_best_path(tmp_path):
    """scripts/lm_nbest.sh: refused (exit 2, one line) without the corpus or with a beam that is
    not a positive integer; the head's calibration, the best-path probes, then each beam's,
    each paired with the best path's; a rerun scores nothing again; the summary table is made
    from the reports (run for real)."""
    root, env = _tree(tmp_path)
    rc, calls, err = _run_script(root, env, "lm_nbest.sh")
    assert rc == 2 and err.count("\n") == 1 and "train.tsv is missing" in err and calls == []
    _touch(root, "data/corpus-v2/train.tsv")
    rc, calls, err = _run_script(root, env | {"BEAMS": "16 x"}, "lm_nbest.sh")
    assert rc == 2 and err.count("\n") == 1 and "'x'" in err and calls == []
    rc, calls, err = _run_script(root, env | {"BEAMS": "4 32"}, "lm_nbest.sh")
    assert rc == 0, err
    evals = [c for c in calls if c[0] == "SL"]
    assert evals[0][1:3] == ["eval", "build-probes"]
    cal = evals[1]
    assert cal[1:3] == ["eval", "tokenizer"] and "--no-ued" in cal
    assert [cal[i + 1] for i, a in enumerate(cal) if a == "--manifest"] == ["valid", "heldout"]
    lms = [c for c in evals if c[1:3] == ["eval", "lm"]]
    assert [c[c.index("--json") + 1] for c in lms] == [
        "docs/lm-nbest-k0.json", "docs/lm-nbest-k4.json", "docs/lm-nbest-k32.json"]
    assert "--probe-beam" not in lms[0]
    assert [c[c.index("--probe-beam") + 1] for c in lms[1:]] == ["4", "32"]
    assert all(c[c.index("--model") + 1] == "whisper-phone-lm" for c in lms)
    assert [c[3:6] for c in evals if c[1:3] == ["eval", "compare-lm"]] == [
        ["docs/lm-nbest-k0.json", "docs/lm-nbest-k4.json", "--json"],
        ["docs/lm-nbest-k0.json", "docs/lm-nbest-k32.json", "--json"]]
    (py,) = [c for c in calls if c[0] == "PY"]
    assert py[1:] == ["-", "docs/lm-nbest.md", "docs/lm-nbest-k0", "docs/lm-nbest-k4",
                      "docs/lm-nbest-k32"]
    _touch(root, "data/probes-v2/syntactic/pairs.tsv")
    rc, calls, err = _run_script(root, env | {"BEAMS": "4 32"}, "lm_nbest.sh")
    assert rc == 0 and not [c for c in calls if c[1:3] in (["eval", "lm"], ["eval", "tokenizer"],
                                                           ["eval", "build-probes"])]

    def lm_report(acc, beam=None):
        block = {"accuracy": acc, "ci95": [acc - 0.05, acc + 0.05],
                 "baselines": {"bigram": {"accuracy": 0.5}, "unigram": {"accuracy": 0.6}}}
        if beam:
            block["beam"] = {"k": beam, "mass": 0.25}
        return {"lexical": block}

    docs = root / "docs"
    (docs / "lm-nbest-k0.json").write_text(json.dumps(lm_report(0.6)))
    for k, acc in ((4, 0.62), (32, 0.7)):
        (docs / f"lm-nbest-k{k}.json").write_text(json.dumps(lm_report(acc, k)))
        (docs / f"lm-nbest-k{k}-compare.json").write_text(json.dumps({"rows": [
            {"kind": "lexical", "delta": acc - 0.6, "ci95": [acc - 0.65, acc - 0.55],
             "distinct": acc - 0.65 > 0}]}))
    quiet = tmp_path / "bin" / "sl-log"  # logs only: the comparisons above stay as written
    quiet.write_text('#!/usr/bin/env bash\necho "SL $*" >> "$FAKE_LOG"\n')
    quiet.chmod(0o755)
    rc, calls, err = _run_script(
        root, env | {"BEAMS": "4 32", "PY": sys.executable, "SL": str(quiet)}, "lm_nbest.sh")
    assert rc == 0, err
    table = (docs / "lm-nbest.md").read_text().splitlines()
    rows = [r for r in table if r.startswith("| ") and r[2].isdigit()]
    assert rows == [
        "| 0 | lexical | - | 0.600 | [0.550, 0.650] | - | 0.500 | 0.600 |",
        "| 4 | lexical | 0.250 | 0.620 | [0.570, 0.670] | +0.020 [-0.030, +0.070] | 0.500 | "
        "0.600 |",
        "| 32 | lexical | 0.250 | 0.700 | [0.650, 0.750] | +0.100* [+0.050, +0.150] | 0.500 | "
        "0.600 |"]


@pytest.mark.parametrize("head, control", [("forced", "more"), ("balanced", "forced")])
def test_wphone_head_forced_aligns_first_and_pairs_its_spelling_with_its_control(
        tmp_path, head, control):
    """scripts/wphone_head_more.sh with HEAD=forced (or balanced): refused (exit 2, one line)
    for another HEAD; the unlabelled voices aligned before the training (once), its own config,
    tokenizer, reports and LM / vocoder copies; its spelling also paired with its control's
    (forced: the longer-trained head; balanced: the forced head), where that one exists."""
    root, env = _tree(tmp_path)
    _touch(root, "data/corpus-v2/train.tsv", "data/real/allison/allison.tsv",
           "data/probes-v2/syntactic/pairs.tsv", "docs/wphone-blank-allison.json",
           "docs/wphone-blank-heldout.json")
    cfg = root / "speechlm/pretrained/whisper-phone/config.json"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('{"unit_space": "wphone-encoder-whisper-phone-ctc-bp1-k41-14a8ee2f"}')
    rc, calls, err = _run_script(root, {**env, "HEAD": "bigger"}, "wphone_head_more.sh")
    assert rc == 2 and err.count("\n") == 1 and "'bigger'" in err and calls == []
    forced = {**env, "HEAD": head}
    tok = f"outputs/tokenizers/whisper-phone-{head}"
    chosen = root / f"outputs/wphone-head-{head}/chosen"
    chosen.parent.mkdir(parents=True)
    chosen.write_text("whisper-phone\n")
    rc, calls, err = _run_script(root, forced, "wphone_head_more.sh")
    assert rc == 0 and f"({head}) spells valid no better" in err
    align, train = [c for c in calls if c[0] == "SL"][:2]
    assert align[1:3] == ["corpus", "align"] and align[align.index("--out") + 1] == \
        "data/align-v2" and align[align.index("--manifest") + 1] == "train"
    assert train[4] == f"configs/encoder/whisper-phone-{head}-cpu.toml" and \
        f"--train.out=outputs/encoder-whisper-phone-{head}" in train
    assert [c[2:] for c in calls if c[0] == "PY"] == [
        [f"outputs/wphone-head-{head}/ctc", tok],
        [f"docs/wphone-{head}-valid.json", f"outputs/wphone-head-{head}/chosen"]]
    _touch(root, "data/align-v2/align.tsv")
    _exported(root / "outputs/tokenizers", f"whisper-phone-{head}")
    chosen.write_text(tok + "\n")
    rc, calls, err = _run_script(root, forced, "wphone_head_more.sh")
    assert rc == 0, err
    assert not [c for c in calls if c[1] in ("train", "corpus")]
    evs = [c for c in calls if c[1:3] == ["eval", "tokenizer"]]
    assert [c[c.index("--json") + 1] for c in evs] == [
        f"docs/wphone-{head}-tokenizer.json", f"docs/wphone-{head}-spelling.json"]  # no control
    assert [c[3:5] for c in calls if c[1:3] == ["eval", "compare-lm"]] == [
        [f"docs/wphone-{head}-base-lm.json", f"docs/wphone-{head}-lm.json"]]
    assert _pairs(calls) == [
        ["docs/wphone-blank-allison.json", f"docs/wphone-{head}-allison.json"],
        ["docs/wphone-blank-heldout.json", f"docs/wphone-{head}-heldout.json"]]
    _exported(root / "outputs/tokenizers", f"whisper-phone-{control}")  # the control at hand
    rc, calls, err = _run_script(root, forced, "wphone_head_more.sh")
    assert rc == 0, err
    (ctl,) = [c for c in calls if c[1:3] == ["eval", "tokenizer"]]
    assert ctl[ctl.index("--json") + 1] == f"docs/wphone-{head}-control.json"
    assert [ctl[i + 1] for i, a in enumerate(ctl) if a == "--tokenizer"] == [
        f"outputs/tokenizers/whisper-phone-{control}", tok]
    assert [ctl[i + 1] for i, a in enumerate(ctl) if a == "--manifest"] == [
        "valid", "test", "heldout", "data/real/allison/allison.tsv",
        "data/probes-v2/lexical/items.tsv"]
    # no better on valid: only the control's pairing is made (a diagnostic), nothing judged
    chosen.write_text("whisper-phone\n")
    (root / f"docs/wphone-{head}-control.json").unlink()
    rc, calls, err = _run_script(root, forced, "wphone_head_more.sh")
    assert rc == 0 and f"({head}) spells valid no better" in err
    assert [c[c.index("--json") + 1] for c in calls if c[0] == "SL"] == [
        f"docs/wphone-{head}-control.json"]
