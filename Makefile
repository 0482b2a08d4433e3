# speechlm: the two quick-start commands, and the scripts that rebuild every shipped artifact.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.speechlm-setup

.PHONY: setup demo test bench corpus tokenizer eval-tokenizer

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)  ## system packages, .venv and the package

demo: $(STAMP)  ## tokenize the bundled samples with the bundled default tokenizer
	$(VENV)/bin/speechlm tokenize --dedup samples/*.wav

test: $(STAMP)  ## the whole test suite (what CI runs)
	$(PY) -m pytest -q

bench: $(STAMP)  ## speed benchmarks against peers, measured in the same run
	$(PY) benchmarks/bench_tokenize.py

corpus: $(STAMP)  ## synthesize the full corpus into data/corpus (~15 min on 2 cores)
	$(VENV)/bin/speechlm corpus synth --out data/corpus

tokenizer: corpus  ## refit the bundled default tokenizer and the samples on data/corpus
	bash scripts/build_default_tokenizer.sh

eval-tokenizer: $(STAMP)  ## unit metrics of the bundled tokenizer on the held-out test split
	$(VENV)/bin/speechlm eval tokenizer --tokenizer mfcc-k100 --manifest test
