"""The AWS Glue runtime the nightly job runs on, and the Glue wheel's dependency pins.

``infra/template.yaml`` runs the job on **AWS Glue 5.1**: Spark 3.5.6, Python 3.11, Java 17
(AWS Glue versions, https://docs.aws.amazon.com/glue/latest/dg/release-notes.html). The
project develops and tests the batch layer on the same PySpark (``pyproject.toml`` pins
``pyspark==3.5.6``); ``tests/test_glue_runtime.py`` keeps the three in step.

Glue installs the job's wheel (``--additional-python-modules``) with pip over the modules
it provides. The list for each version is in "Python modules already provided in AWS Glue"
(https://docs.aws.amazon.com/glue/latest/dg/aws-glue-programming-python-libraries.html#glue-modules-provided),
whose 5.1 list AWS publishes as ``base-requirements.txt`` on the ``glue-5.1`` branch of
https://github.com/awslabs/aws-glue-libs (commit dc40ea05fa59ed475ba7e4561699c0783874e0e0).
:data:`GLUE_PROVIDED` holds the rows of it the job imports. The wheel's requirements are
chosen so that pip changes none of them: a range the provided version satisfies for what
Glue provides, an exact pin for what it does not (scipy), and nothing for pyspark/py4j.
"""

from __future__ import annotations

from typing import Final

from packaging.requirements import Requirement
from packaging.version import Version

__all__ = [
    "GLUE_PROVIDED",
    "GLUE_PYTHON",
    "GLUE_REQUIREMENTS",
    "GLUE_SPARK",
    "GLUE_VERSION",
    "unmet_pins",
]

GLUE_VERSION: Final = "5.1"
GLUE_SPARK: Final = "3.5.6"
GLUE_PYTHON: Final = "3.11"
#: Modules Glue 5.1 provides that the job imports (numpy, pandas, pyarrow for Arrow-backed
#: ``applyInPandas``, botocore/boto3 for the registry table), at the versions AWS lists.
GLUE_PROVIDED: Final = {
    "boto3": "1.40.61",
    "botocore": "1.40.61",
    "numpy": "2.3.4",
    "pandas": "2.3.3",
    "pyarrow": "22.0.0",
}
#: The Glue wheel's ``Requires-Dist``: ranges Glue's own modules satisfy, an exact pin for
#: scipy (not provided; 1.17.1 asks for numpy >=1.26.4,<2.7, which 2.3.4 meets, and is the
#: version the Spark tests run with).
GLUE_REQUIREMENTS: Final = (
    "numpy>=2.0,<3",
    "pandas>=2.2,<3",
    "pyarrow>=17",
    "scipy==1.17.1",
)


def unmet_pins(requirements: tuple[str, ...] = GLUE_REQUIREMENTS) -> list[str]:
    """Requirements pip would act on over Glue's modules: a provided module the range
    excludes (pip would replace it) or a module Glue lacks that is not pinned exactly
    (pip would pick whatever is newest on the day). Empty when the wheel installs cleanly."""
    unmet: list[str] = []
    for text in requirements:
        req = Requirement(text)
        provided = GLUE_PROVIDED.get(req.name.lower())
        if provided is not None:
            if Version(provided) not in req.specifier:
                unmet.append(f"{text} would replace Glue {GLUE_VERSION}'s {req.name} {provided}")
        elif not (len(req.specifier) == 1 and next(iter(req.specifier)).operator == "=="):
            unmet.append(f"{text}: Glue {GLUE_VERSION} does not provide {req.name}, so pin it exactly (==)")
    return unmet
