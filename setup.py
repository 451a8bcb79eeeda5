from setuptools import find_packages, setup

setup(
    name="frugal",
    version="0.1.0",
    description="Kaldi-style staged recipes for data- and compute-efficient speech recognition",
    package_dir={"": "lib"},
    packages=find_packages("lib"),
    python_requires=">=3.9",
    entry_points={"console_scripts": ["frugal = frugal.bin.main:main"]},
)
