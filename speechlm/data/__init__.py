"""Data that training and evaluation share: corpus synthesis (:mod:`.corpus`), manifests and
phone labels (:mod:`.manifest`) and memory-mapped unit shards (:mod:`.shards`).

``train/`` and ``eval/`` both import from here and never from each other.
"""
