"""Only the package map lives here: the library under src/, and the analysis code in analysis/
(installed as ``sedwatt_analysis``). Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    package_dir={"": "src", "sedwatt_analysis": "analysis"},
    packages=find_packages("src") + ["sedwatt_analysis"] + [f"sedwatt_analysis.{p}" for p in find_packages("analysis")],
)
