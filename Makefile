.PHONY: setup demo test test-fast
setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/musicjudge demo

test: setup
	bash scripts/test.sh
