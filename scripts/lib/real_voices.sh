# The real speakers besides Allison (scripts/build_real_voice.sh, scripts/vocoder_real.sh); sourced.
# Each: <package suffix>/<sounds folder> of asterisk-core-sounds-<suffix> (French, Italian,
# Russian; the Spanish package is Allison again, so it is not one of them).
REAL_OTHERS="fr-g722/fr_CA_f_June it-g722/it_IT_m_Carlo ru-g722/ru_RU_f_IvrvoiceRU"
