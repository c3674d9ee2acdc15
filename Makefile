.PHONY: install format lint typecheck test bench up

install:
	pip install -e ".[test]"

format:
	ruff check --fix .
	ruff format .

lint:
	ruff check .
	ruff format --check .

typecheck:
	mypy hub connectors workers tests

test:
	pytest -q

bench:
	hub bench --quick

up:
	hub up
