# speechlm: the two quick-start commands, and the scripts that rebuild every shipped artifact.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.speechlm-setup

.PHONY: lm-nbest wphone-head-balanced wphone-head-forced wphone-head-more wphone-unit-rate wphone-vocoder-tune wphone-blank wphone-words lm-phone-text wphone-prompt-contour wphone-contour wphone-f0-spread drawn-f0-split int8-units wphone-default whisper-phone tempo-reports whisper-k500 whisper-default whisper-units real-voice real-voice-reports real-voice-units vocoder-real vocoder-voices vocoder-warp vocoder-loss-wer gpu-vocoder-prepare gpu-vocoder-judge mel-limit unit-oracle unit-runs voice-lookup vocoder-overfit vocoder-grow vocoder-adversarial setup demo test lint bench corpus corpus-world reports tokenizer eval-tokenizer lm eval-lm lm-scaling lm-data-scale lm-phone-oracle phone-ctc vocoder vocoder-warm \
	eval-resynth eval-continue encoder-units phone-units phone-more phone-specaug phone-cmn phone-control forced-align \
	phone-forced phone-forced-ctc phone-adv phone-cmn-long phone-cmn-long2 phone-cons phone-band phone-band2 \
	tokenizer-input band-limit-reports speeds-reports switch-units default-units waveform

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)  ## system packages, .venv and the package

demo: $(STAMP)  ## continue a bundled sample prompt with the bundled model: outputs/demo/*.wav
	$(VENV)/bin/speechlm continue samples/flite_slt_arctic_a0004.wav \
	  -o outputs/demo/continued.wav --seconds 5 --num-samples 2 --seed 0 --force \
	  --units-out outputs/demo/units.jsonl
	@echo "demo: play outputs/demo/continued-1.wav and continued-2.wav (prompt: the first 3.3 s)"

test: $(STAMP)  ## the whole test suite (what CI runs)
	$(PY) -m pytest -q

lint: $(STAMP)  ## ruff (rules in pyproject.toml)
	$(VENV)/bin/ruff check speechlm tests benchmarks

bench: $(STAMP)  ## speed benchmarks against peers, measured in the same run
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) benchmarks/bench_tokenize.py
	$(PY) benchmarks/bench_lm.py
	$(PY) benchmarks/bench_vocoder.py
	$(PY) benchmarks/bench_continue.py
	$(PY) benchmarks/bench_augment.py
	$(PY) benchmarks/bench_busy_neighbour.py
	$(PY) benchmarks/bench_serve.py

corpus: $(STAMP)  ## synthesize the 15-voice ARCTIC corpus into data/corpus (~15 min on 2 cores)
	$(VENV)/bin/speechlm corpus synth --out data/corpus

corpus-world: $(STAMP)  ## the world corpus into data/corpus-v2: 110.8 h (~2 h on 2 cores; HOURS=2 for a sample)
	HOURS=$(or $(HOURS),106) bash scripts/build_corpus.sh

reports: corpus  ## re-run the tokenizer, resynthesis and continuation reports with the judges (~1 h)
	bash scripts/build_judged_reports.sh

tokenizer: corpus  ## refit the mfcc-k100 baseline tokenizer and the samples on data/corpus
	bash scripts/build_default_tokenizer.sh

eval-tokenizer: $(STAMP)  ## unit metrics of the bundled tokenizer on held-out engines and sentences (world corpus)
	$(VENV)/bin/speechlm eval tokenizer --tokenizer phone-k100 --tokenizer mfcc-k100 \
	  --manifest test --manifest heldout

lm: $(STAMP)  ## rebuild the bundled unit LM (phone-lm) as the switch to the bundled units made it: configs/lm/phone-cpu.toml on those units, scored against the first phone default (~45 min; needs corpus-world): docs/switch-lm-new-rebuild*
	bash scripts/build_default_lm.sh

lm-scaling: $(STAMP)  ## the LM scaling sweep and the text-interleaving runs (~1.5 h; needs corpus-world): docs/lm-scaling*
	bash scripts/build_lm_scaling.sh

lm-data-scale: $(STAMP)  ## the unit LM on the full 106 h corpus against the 12.5 h runs (~2.5 h with the corpus build): docs/lm-data-scale*
	HOURS=106 OUT=data/corpus-106 bash scripts/build_corpus.sh
	bash scripts/build_lm_data_scale.sh

lm-nbest: $(STAMP)  ## the probes scored over the tokenizer's likely unit strings: the bundled LM's expectation over the bundled CTC head's K most likely unit strings of each item (eval lm --probe-beam K, K in BEAMS="16 64 256 1024"), the n-gram baselines alike, paired with its best-path score; the head's calibration on valid and the held-out engines first (~40 min; needs the world corpus; nothing trained or shipped): scripts/lm_nbest.sh, docs/lm-nbest*
	bash scripts/lm_nbest.sh

wphone-head-forced: $(STAMP)  ## make wphone-head-more's steps for a head that also learned from the 15 training voices without engine labels (espeak-ng, RHVoice: labelled by speechlm corpus align into data/align-v2, their crops training CTC only; configs/encoder/whisper-phone-forced-cpu.toml, the same 3,000 steps from the bundled head, so the longer-trained head is its control), its spelling also paired with that control where it exists (~1.5 h; needs the world corpus): HEAD=forced scripts/wphone_head_more.sh, docs/wphone-forced-*
	HEAD=forced bash scripts/wphone_head_more.sh

wphone-head-balanced: $(STAMP)  ## make wphone-head-forced's steps for a head whose crops are drawn by voice (configs/encoder/whisper-phone-balanced-cpu.toml, data.voice_balance = 1: each of the 27 base voices alike, so more than half of the crops come from the 15 without engine labels), its spelling also paired with make wphone-head-forced's head, its control, where it exists (~1.5 h; needs the world corpus): HEAD=balanced scripts/wphone_head_more.sh, docs/wphone-balanced-*
	HEAD=balanced bash scripts/wphone_head_more.sh

wphone-head-more: $(STAMP)  ## the bundled Whisper phone head trained 3,000 more steps (configs/encoder/whisper-phone-more-cpu.toml, ~35 min on 2 cores) and read as the bundle reads it (blank penalty 1): its spelling on valid against the bundled head (the steps after run only when it is lower), then on test, the held-out engines, Allison and the probe items, the bundled LM reading its units on the probes, the bundled vocoder on them (Allison, held-out engines; paired with make wphone-blank's reports); STEPS="tokenizer lm vocoder continue" picks the steps (~1.5 h; needs the world corpus); SHIP=1 (with STEPS=none) makes it the bundled head, the LM and vocoder adopted onto it: scripts/wphone_head_more.sh, docs/wphone-more-*
	bash scripts/wphone_head_more.sh

wphone-unit-rate: $(STAMP)  ## the bundled LM's unit rate (what continue --seconds sizes a continuation by) measured for the units it reads now: both readings of the bundled head (without and with the blank penalty) on the same 300 training utterances, its trained-on rate scaled by their ratio, given to adopt-units in place (~3 min; config only): scripts/wphone_unit_rate.sh, docs/wphone-unit-rate
	bash scripts/wphone_unit_rate.sh

wphone-vocoder-tune: $(STAMP)  ## the bundled vocoder fine-tuned 1,000 steps on the units the bundled tokenizer reads now (the CTC blank penalty), beside a control run on the units without it (more training alone), both judged by resynthesis on Allison and the held-out engines against the bundle on the same units (~70 min; needs the world corpus and make wphone-blank's reports; STEPS="drawn continue" adds the drawn-F0 path and continuations, for a decision to ship; not shipped 2026-12-07: no fewer words lost); SHIP=1 (with STEPS=none) copies the fine-tune over the bundled vocoder: scripts/wphone_vocoder_tune.sh, docs/wphone-vocoder-tune*
	bash scripts/wphone_vocoder_tune.sh

wphone-blank: $(STAMP)  ## the bundled tokenizer read with a CTC blank penalty (its blank's logit lowered: phones the blank outweighs by less are emitted; no new weights): penalties 0.5, 1 and 2 chosen on valid by phone error rate, the candidate judged once on held-out voices: spelling (test, held-out engines, Allison, the probe items), the bundled LM reading its units on the probes, the bundled vocoder on them (Allison, held-out engines), Allison's continuations; STEPS="tokenizer lm vocoder continue" picks the steps (~75 min; needs the world corpus; refused once the bundle reads with a penalty); SHIP=1 (with STEPS=none) makes the choice the bundled default, configs only (done 2026-12-07): scripts/wphone_blank.sh, docs/wphone-blank-*
	bash scripts/wphone_blank.sh

wphone-words: $(STAMP)  ## the phone head taught isolated words: 6,000 words and pseudo-words spoken alone by the training voices (speechlm corpus words), the bundled head trained on with half its batches those, and the bundled head read with 0.5 s of silence around each input (the edge pad); their spelling of the probe items and of sentences, the bundled LM reading the padded units on the same probes (speechlm adopt-units), the bundled vocoder on them (Allison, held-out engines), Allison's continuations; STEPS="spelling lm vocoder continue" picks the steps (the default), STEPS="lm retrain" adds the LM retrained on the padded units and a seed-1 retrain of the bundled LM as its calibration (~2 h in all, +80 min for retrain; needs the world corpus): scripts/wphone_words.sh, docs/wphone-words-*
	bash scripts/wphone_words.sh

lm-phone-text: $(STAMP)  ## text in the unit space: the bundled LM's recipe on the whisper-phone units of the world corpus, units only and mixed with 4 x as many tokens of the text pool spelled as phones (CMUdict), each scored on the held-out voices' probes (~75 min; PAR=1 trains both side by side; needs the world corpus): scripts/lm_phone_text.sh, docs/lm-wphone-{units,text}
	bash scripts/lm_phone_text.sh

lm-phone-oracle: $(STAMP)  ## the probes scored by the LM recipe trained on reference phones, and by phone-lm on seen voices (~35 min): docs/lm-oracle-phones*
	[ -f data/corpus-v2/corpus.json ] || HOURS=12 bash scripts/build_corpus.sh
	bash scripts/build_lm_phone_oracle.sh

phone-ctc: $(STAMP)  ## phone-rate CTC units: their tokenizer report, LMs scored on the aligned probes, a vocoder on them (~3 h): docs/*phone-ctc*
	[ -f data/corpus-v2/corpus.json ] || HOURS=12 bash scripts/build_corpus.sh
	bash scripts/build_phone_ctc.sh

eval-lm: $(STAMP)  ## perplexity and probe accuracies of the bundled LM (world corpus test split, held-out engines)
	$(VENV)/bin/speechlm eval build-probes --out data/probes-v2 --corpus data/corpus-v2 \
	  --voices pico_us,piper_joe,mbrola_us3
	$(VENV)/bin/speechlm eval lm --probes data/probes-v2

vocoder: $(STAMP)  ## rebuild the bundled unit vocoder (phone-vocoder) as the switch to the bundled units made it: 3,000 steps of configs/vocoder/phone-cpu-more.toml warm-started from the first phone default, judged against it, paired, and benched (~1.5 h; needs corpus-world): docs/switch-vocoder-*-rebuild*
	bash scripts/build_default_vocoder.sh

vocoder-warm: $(STAMP)  ## the bundled vocoder trained 3,000 steps more, on its units and on K = 500 units (warm starts), each judged against it, paired (~3 h; needs corpus-world): docs/vocoder-warm-*
	bash scripts/vocoder_warm_start.sh more configs/vocoder/phone-cpu-more.toml
	K=500 bash scripts/vocoder_warm_start.sh k500 configs/vocoder/phone-k500-cpu.toml

eval-resynth: $(STAMP)  ## resynthesis WER / speaker similarity / DNSMOS / F0 of the bundled vocoder on held-out engines
	$(VENV)/bin/speechlm eval resynth --data heldout --per-voice 2

eval-continue: $(STAMP)  ## the continuation report of the bundled model, with figures (docs/)
	bash scripts/build_continue_report.sh

encoder-units: corpus  ## HuBERT-style encoder units vs MFCC units on test (docs/encoder-units.md)
	VOC_STEPS=1000 ITER2=1 bash scripts/build_encoder_units.sh

waveform: $(STAMP)  ## harmonic-plus-noise waveform stage, judged by copy synthesis (needs corpus-world; ~1 h)
	bash scripts/build_waveform.sh

phone-units: $(STAMP)  ## phone-supervised encoder + its units at K=50..500, judged (needs corpus-world; ~1.5 h)
	bash scripts/build_phone_tokenizer.sh
	$(PY) benchmarks/bench_phone_tokenize.py --tokenizer outputs/tokenizers/phone-k100

phone-more: $(STAMP)  ## the bundled phone encoder trained 3,600 steps more, its units judged and an LM scored on them (~75 min; needs corpus-world): docs/*phone-more*
	bash scripts/build_phone_encoder_more.sh

phone-specaug: $(STAMP)  ## the same 3,600 steps with SpecAugment on the log-mel input, its units judged against phone-k100 (~1 h; needs corpus-world): docs/tokenizer-phone-specaug*
	NAME=specaug LM=0 EXTRA="--data.spec_freq_masks=2 --data.spec_freq_width=15 --data.spec_time_masks=2 --data.spec_time_width=10" bash scripts/build_phone_encoder_more.sh

phone-cmn: $(STAMP)  ## the same 3,600 steps with per-input mean normalisation of the log-mel bands (model.extractor_mode=logmel_cmn), its units judged against phone-k100 (~1 h; needs corpus-world): docs/tokenizer-phone-cmn*
	NAME=cmn LM=0 EXTRA="--model.extractor_mode=logmel_cmn" bash scripts/build_phone_encoder_more.sh

phone-control: $(STAMP)  ## the control of phone-cmn: the same 3,600 steps, recipe unchanged, on today's corpus draw (~1 h; needs corpus-world): docs/tokenizer-phone-control*
	NAME=control LM=0 bash scripts/build_phone_encoder_more.sh

forced-align: $(STAMP)  ## phone labels by forced alignment for the train voices without engine labels (espeak-ng, RHVoice), and their agreement with engine labels where known (~4 min; needs corpus-world): data/align-v2, docs/forced-alignment-*
	bash scripts/build_forced_alignments.sh

phone-forced: forced-align  ## phone-cmn's run with the force-aligned espeak-ng and RHVoice utterances added to training (15 more voices), judged against phone-cmn (~1 h; run make phone-cmn first): docs/tokenizer-phone-cmn-forced*
	NAME=cmn-forced LM=0 BASE=outputs/tokenizers/phone-cmn-k100 EXTRA="--model.extractor_mode=logmel_cmn --data.forced_alignments=data/align-v2" bash scripts/build_phone_encoder_more.sh

phone-forced-ctc: forced-align  ## phone-forced with the force-aligned crops training CTC only (their phone sequence, not their guessed boundaries), judged against phone-cmn (~1 h; run make phone-cmn first): docs/tokenizer-phone-cmn-forced-ctc*
	NAME=cmn-forced-ctc LM=0 BASE=outputs/tokenizers/phone-cmn-k100 EXTRA="--model.extractor_mode=logmel_cmn --data.forced_alignments=data/align-v2 --data.forced_loss=ctc" bash scripts/build_phone_encoder_more.sh

phone-adv: $(STAMP)  ## phone-cmn's run with a speaker adversary (gradient reversal, base-voice targets, weight 0.3), judged against phone-cmn (~1 h; run make phone-cmn first): docs/tokenizer-phone-cmn-adv*
	NAME=cmn-adv LM=0 BASE=outputs/tokenizers/phone-cmn-k100 EXTRA="--model.extractor_mode=logmel_cmn --model.adv_weight=0.3 --model.adv_target=voice" bash scripts/build_phone_encoder_more.sh

phone-cmn-long: $(STAMP)  ## phone-cmn's encoder trained 3,600 more steps of its own recipe, judged against phone-cmn (~1 h; run make phone-cmn first): docs/tokenizer-phone-cmn-long*
	NAME=cmn-long LM=0 BASE=outputs/tokenizers/phone-cmn-k100 INIT=outputs/encoder-phone-cmn/model EXTRA="--model.extractor_mode=logmel_cmn" bash scripts/build_phone_encoder_more.sh

phone-cmn-long2: $(STAMP)  ## phone-cmn-long's encoder trained 3,600 more steps of its own recipe, judged against phone-cmn-long (~1 h; run make phone-cmn-long first): docs/tokenizer-phone-cmn-long2*
	NAME=cmn-long2 LM=0 BASE=outputs/tokenizers/phone-cmn-long-k100 INIT=outputs/encoder-phone-cmn-long/model EXTRA="--model.extractor_mode=logmel_cmn" bash scripts/build_phone_encoder_more.sh

phone-cons: $(STAMP)  ## phone-cmn-long2's run with a two-view posterior consistency loss (weight 1), judged against phone-cmn-long2 (~1.2 h; run make phone-cmn-long2 first): docs/tokenizer-phone-cons*
	NAME=cons LM=0 BASE=outputs/tokenizers/phone-cmn-long2-k100 INIT=outputs/encoder-phone-cmn-long/model EXTRA="--model.extractor_mode=logmel_cmn --model.consistency_weight=1" bash scripts/build_phone_encoder_more.sh

phone-band: $(STAMP)  ## phone-cmn-long2's run on input low-passed at 6400 Hz (data.band_limit), its k-means fitted the same way, judged against the default units (phone-cmn-long read at 6400 Hz; ~1.2 h; run make default-units first): docs/tokenizer-phone-band*
	NAME=band LM=0 BASE=outputs/tokenizers/phone-cmn-long-b6400-k100 INIT=outputs/encoder-phone-cmn-long/model EXTRA="--model.extractor_mode=logmel_cmn --data.band_limit=6400" TOKFLAGS="--band-limit 6400" EVALFLAGS="--band-limit 6400" bash scripts/build_phone_encoder_more.sh

phone-band2: $(STAMP)  ## phone-band's encoder trained 3,600 more steps of its own recipe (input low-passed at 6400 Hz), judged against phone-band (~1.2 h; run make phone-band first): docs/tokenizer-phone-band2*
	NAME=band2 LM=0 BASE=outputs/tokenizers/phone-band-k100 INIT=outputs/encoder-phone-band/model EXTRA="--model.extractor_mode=logmel_cmn --data.band_limit=6400" TOKFLAGS="--band-limit 6400" EVALFLAGS="--band-limit 6400" bash scripts/build_phone_encoder_more.sh

tokenizer-input: $(STAMP)  ## the tokenizer's test-time input options judged: the band limit chosen on valid, then against the full band on seen and unheard voices; --warp auto (~45 min; needs make phone-cmn-long): docs/tokenizer-band-*, docs/tokenizer-warp-*
	bash scripts/eval_tokenizer_input.sh

band-limit-reports: $(STAMP)  ## the bundled pipeline's resynthesis with the tokenizer's input band-limited (CUT=7200) against the full band, held-out engines, Whisper (~25 min): docs/band-vocoder-*
	bash scripts/band_limit_reports.sh

speeds-reports: $(STAMP)  ## the tokenizer's speed ensemble (--speeds) chosen on valid, then on seen and unheard voices and through the bundled pipeline's resynthesis of the held-out engines (CHOSEN=0.85,1,1.15; ~35 min): docs/tokenizer-speeds-*, docs/vocoder-speeds-*
	CHOSEN=$${CHOSEN:-0.85,1,1.15} bash scripts/speeds_reports.sh

mel-limit: $(STAMP)  ## where resynthesis loses the words: the bundled vocoder's predicted log-mel through its waveform stage and Griffin-Lim against the original's own log-mel through both (copy synthesis), held-out engines; and utterances the vocoder trained on (~20 min): docs/vocoder-mel-limit-*
	bash scripts/mel_limit_reports.sh

unit-oracle: $(STAMP)  ## would resynthesis keep the words if the encoder heard every phone right? The bundled pipeline on the held-out engines' aligned voices with the units as read and corrected by the reference phones (eval resynth --unit-oracle), paired (~30 min): docs/unit-oracle-*
	bash scripts/unit_oracle_reports.sh

unit-runs: $(STAMP)  ## copy synthesis of the original's log-mel averaged over each unit run and over each unit (also by the reference phones): can a static spectrum per run, or per unit, carry the words? (~20 min; needs make unit-oracle's manifest): docs/vocoder-{unit,phone}-runs-heldout.*
	bash scripts/unit_runs_reports.sh

voice-lookup: $(STAMP)  ## copy synthesis of each unit's spectrum (or each unit's between its neighbouring runs' units) pooled over the voice's other utterances, for K = 100 / 500 / 2,000: how many words can a lookup table in the speaker's own voice carry? (~35 min): docs/vocoder-voice-lookup-*heldout.*
	bash scripts/voice_lookup_reports.sh

vocoder-overfit: $(STAMP)  ## can the decoder speak utterances it has learned by heart? The bundled vocoder trained 2,000 steps on make mel-limit's 62 training utterances alone, and on 620, judged on them, on new sentences of their voices and on the held-out engines against the bundle, paired (~75 min; needs make mel-limit): docs/vocoder-overfit-*
	bash scripts/vocoder_overfit.sh

vocoder-adversarial: $(STAMP)  ## the bundled vocoder trained 2,000 steps more with a patch critic on its log-mel (adversarial + feature matching, two weights), against the same steps without it, paired on the held-out engines (~1 h on 2 cores): docs/vocoder-adv*
	bash scripts/vocoder_adversarial.sh

vocoder-grow: $(STAMP)  ## the bundled vocoder grown by 1 pre and 3 post blocks (each starting as the identity) and trained 2,000 steps, against the same 2,000 steps without growing, paired on the held-out engines (~1 h on 2 cores): docs/vocoder-grow-*
	bash scripts/vocoder_grow.sh

vocoder-warp: $(STAMP)  ## the bundled vocoder trained 2,000 steps with half the crops' voices warped along the mel axis (new voices from old ones), against the same steps without (make vocoder-grow's control): losses on known and unheard voices, then held-out WER, paired (~35 min; needs make vocoder-grow): docs/vocoder-warp-*
	bash scripts/vocoder_warp.sh

real-voice: $(STAMP)  ## a real human voice to judge on: Allison Smith's Asterisk prompts (217 with transcripts, G.722 16 kHz, and their 8 kHz telephone copies) and 3 other real speakers for the similarity calibration, from Debian packages fetched with apt-get download (~1 min): data/real/
	bash scripts/build_real_voice.sh

real-voice-reports: $(STAMP)  ## the bundled pipeline on that real voice: resynthesis (source and drawn F0, the units-shuffled baseline, copy synthesis), the telephone copies, the units replaced by the aligner's phones (a diagnostic), continuations (~2 h): docs/real-allison-*
	bash scripts/real_voice_reports.sh

real-voice-units: $(STAMP)  ## units on that real voice against pocketsphinx's forced phone labels, beside the held-out engines labelled by the same aligner (and its agreement with MBROLA's own labels): PNMI, ABX, frame phone error, UED of phone-k100 and mfcc-k100 (~15 min; needs make real-voice): docs/real-units.*, docs/real-aligner.json
	bash scripts/real_voice_units.sh

vocoder-real: $(STAMP)  ## the bundled vocoder trained 2,000 steps with three real speakers of other languages joined to its cache (make vocoder-grow's control recipe), judged on Allison Smith's real English prompts and the held-out engines, paired with the control (~70 min; needs make vocoder-grow and make real-voice-reports): docs/vocoder-real-*
	bash scripts/vocoder_real.sh

whisper-units: $(STAMP)  ## units from an encoder trained on real speech: k-means over layer 3 of Whisper tiny.en's audio encoder (the installed wheel), against the bundled units on the real voice and the held-out engines; the bundled decoder carried over to them (make vocoder-grow's control recipe) and judged on the real voice by Whisper and pocketsphinx and on the held-out engines, paired with the control (~100 min; needs make vocoder-grow and make real-voice): docs/whisper-units*
	bash scripts/whisper_units.sh

vocoder-voices: $(STAMP)  ## the bundled recipe from scratch on equal data from 6, 13 or all 27 base voices, or every engine but MBROLA: losses on known, unheard-voice, unheard-engine and held-out voices, per voice, then held-out WER of 6 against 27 and of 27 against the bundle, paired (~90 min with JOBS=3): docs/vocoder-voices*
	bash scripts/vocoder_voices.sh

vocoder-loss-wer: $(STAMP)  ## how far the decoder's log-mel loss tracks its held-out WER: the loss of the 7 decoders on the bundled units judged so far (bundle, overfit x2, adversarial x2, grow x2), on known and on unheard voices, beside their committed held-out WER (~5 min): docs/vocoder-loss-wer.*
	bash scripts/vocoder_loss_wer.sh

gpu-vocoder-prepare: $(STAMP)  ## what the GPU scale test of the vocoder carries to a lent device machine: the bundled vocoder's training cache packed under 64 MiB (data/vocoder/pack-gpu) and the wheels it lacks (.whl/) (~5 min; needs make default-units' cache); then run scripts/gpu_vocoder_scale.sh there (its header says how)
	bash scripts/gpu_vocoder_prepare.sh

gpu-vocoder-judge: $(STAMP)  ## judge what scripts/gpu_vocoder_scale.sh brought back (DIR=<its files>) against the bundle: valid loss, valid40 WER, then the held-out engines, paired (~30 min): docs/vocoder-gpu-scale-*
	bash scripts/gpu_vocoder_judge.sh "$(DIR)"

whisper-default: $(STAMP)  ## the bundled default switched to Whisper units: whisper-k100 (k-means over layer 3 of Whisper tiny.en's encoder), whisper-vocoder (the phone-vocoder carried over to them) and whisper-lm, trained side by side, judged against the phone bundle's reports on the held-out engines, test, Allison's real prompts, the probes and continuations (~2 h; needs corpus-world): scripts/switch_whisper_default.sh, docs/switch-whisper-*
	bash scripts/switch_whisper_default.sh

whisper-k500: $(STAMP)  ## the bundled whisper-vocoder's recipe on K = 500 Whisper units instead of 100, judged on Allison's real prompts (Whisper and pocketsphinx) and the held-out engines, paired with the same recipe at K = 100, then the LM recipe on the same units and its probes (~2 h; needs make whisper-units' reports and the world corpus): scripts/whisper_k500.sh, docs/whisper-k500-*
	bash scripts/whisper_k500.sh

whisper-phone: $(STAMP)  ## phone-rate units from Whisper: a phone head on Whisper tiny.en's frozen encoder (frame + CTC losses on the world corpus's alignments), its CTC phone string as units judged beside whisper-k100 and phone-k100 on seen, held-out and real voices, then the bundled LM's recipe on them and its probes (~1.2 h; needs the world corpus): scripts/whisper_phone.sh, docs/tokenizer-whisper-phone, docs/whisper-phone-lm
	bash scripts/whisper_phone.sh

wphone-default: $(STAMP)  ## the bundled default switched to the Whisper phone head's CTC units: whisper-phone, whisper-phone-lm and whisper-phone-vocoder exported from make whisper-phone's runs (as shipped: head and LM in float16, the vocoder's blocks in int8), judged against the previous default's committed reports on Allison's continuations and resynthesis, the held-out engines and test (~1 h, no training; needs make whisper-phone and make real-voice): scripts/switch_wphone_default.sh, docs/switch-wphone-*
	bash scripts/switch_wphone_default.sh

int8-units: $(STAMP)  ## the default's units with Whisper's linear layers in int8 (tokenize --precision int8): judged against float32 on seen, held-out and real voices, and benchmarked against the same peers (~25 min; needs the world corpus and make real-voice): scripts/int8_units.sh, docs/tokenizer-wphone-int8, docs/bench-whisper-phone-int8.json
	bash scripts/int8_units.sh

drawn-f0-split: $(STAMP)  ## where the drawn-F0 path loses words: the default vocoder's drawn contour split into its pitch and its voicing (eval resynth --methods hn-drawn-f0,hn-src-voicing,hn-src-pitch), paired with the source's contour and the drawn one on 80 of Allison's prompts and the held-out engines (~45 min; needs make real-voice and the world corpus): scripts/drawn_f0_split.sh, docs/drawn-f0-split-*
	bash scripts/drawn_f0_split.sh

wphone-f0-spread: $(STAMP)  ## the default vocoder's drawn-F0 spread (1 draws, 0 takes each frame's median) chosen on 40 valid utterances of known voices, then CHOSEN=X judged on Allison's 80 prompts and the held-out engines against the drawn-F0 split's reports (~15 + 20 min; needs make drawn-f0-split for step 2): scripts/wphone_f0_spread.sh, docs/vocoder-wphone-f0-spread-valid-*, docs/wphone-f0-spread-*
	bash scripts/wphone_f0_spread.sh

wphone-contour: $(STAMP)  ## the drawn-F0 path's pitch shape from the whole utterance: an intonation model (speechlm.prosody, a bidirectional GRU over the frame units) trained on the default vocoder's analysed corpus and put in copies of the default vocoder, judged at spreads 1, 0.5 and 0 on 40 valid utterances against the default at the same spread and as shipped, then CHOSEN=S on Allison's 80 prompts and the held-out engines against the default as shipped, and with CONTINUE=1 her continuations against the default's; CHOSEN=1 SHIP=1 writes it into the bundled vocoder and judges that on all 217 of her prompts (~30 min of training + 15 + 25 + 20 min; needs make whisper-phone, make wphone-f0-spread and, for step 3, make drawn-f0-split): scripts/wphone_contour.sh, docs/wphone-contour-*
	bash scripts/wphone_contour.sh

wphone-prompt-contour: $(STAMP)  ## the continuation carries on the prompt's intonation: the prompt spoken with its own F0 (continue's default now) judged on Allison's continuations against the drawn prompt, then an intonation model that reads that F0 (configs/vocoder/contour-prompt-cpu.toml) judged against it; and where nothing is known (her 80 prompts' drawn-path resynthesis); HELDOUT=1 adds the held-out engines, SHIP=1 writes the model into the bundled vocoder; WEIGHT=W judges the bundle speaking its drawn contour itself (drawn_f0_weight W) the same two ways (with HELDOUT=1 also on the held-out engines against a copy at 0), SHIP_WEIGHT=W writes W into the bundled vocoder's config (~40 min of training + 4 x 15 min; needs the world corpus, make real-voice): scripts/wphone_prompt_contour.sh, docs/prompt-*, docs/drawn-f0-weight-*
	bash scripts/wphone_prompt_contour.sh

tempo-reports: $(STAMP)  ## the continuation's pace fitted on the prompt (Vocoder.fit_tempo): how well a tempo fitted on an utterance's first half predicts its second half's length (real voice, held-out engines), and Allison's continuations against the same at tempo 1 (~25 min; needs make real-voice and the world corpus): scripts/tempo_reports.sh, docs/tempo-*
	bash scripts/tempo_reports.sh

switch-units: $(STAMP)  ## switch the bundled tokenizer, vocoder and LM together to the units of TOK=<tokenizer directory>, judged against the ones replaced (~1.5 h): scripts/switch_default_units.sh
	TOK="$(TOK)" RUN="$(RUN)" bash scripts/switch_default_units.sh

default-units: $(STAMP)  ## the band-limited default units (staged as phone-k100-b6400), then the switch to them with their vocoder and LM, from nothing: corpus sample, phone-cmn and phone-cmn-long encoders, k-means below 6400 Hz (~3 h on 2 idle cores; UNITS_ONLY=1: the units alone, ~1.8 h): scripts/build_default_units.sh
	UNITS_ONLY="$(UNITS_ONLY)" bash scripts/build_default_units.sh
