"""Builds the tiny random reference models and dumps every reference-tensor file into spec/fixtures/.

usage: python scripts/parity/dump_reference.py [case-module ...]
Each `cases_*.py` beside this file defines `main()`; with no argument every one runs.
"""
import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

if __name__ == "__main__":
    names = sys.argv[1:] or sorted(p.stem for p in HERE.glob("cases_*.py"))
    for name in names:
        print(f"== {name}")
        importlib.import_module(name).main()
