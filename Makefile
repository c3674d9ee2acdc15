.PHONY: install lint typecheck test bench up

install:
	pip install -e ".[test]"

lint:
	ruff check .
	ruff format --check .

typecheck:
	mypy hub connectors workers

test:
	pytest -q

bench:
	hub bench --quick

up:
	hub up
