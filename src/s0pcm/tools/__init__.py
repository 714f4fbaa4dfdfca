"""One-off jobs the CLI runs: taking over from a legacy reader, exporting, backfilling history,
and the demo."""
