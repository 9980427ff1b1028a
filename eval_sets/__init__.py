"""The bundled eval sets (qa.jsonl, safety.jsonl) and the Corvid Gateway docs they ask about (corpus/).

A package only so that the files install with Tessera; find them with `pipeline.qa_set.bundled_path`.
"""
