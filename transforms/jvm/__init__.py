"""carve's own Spark SQL functions, written in Java beside this file, called from the transforms.

`dynamodb_json(text)` turns a JSON document into its DynamoDB value in one pass of a real
parser (DynamoJson.java). Spark SQL has no recursive JSON function, and the regex rewriting
it replaced took a dozen passes per document, most of carve's transform time; a Python UDF
(json.loads) was no faster: 75 us per document, measured on 2026-12-05.

`dynamodb_number(text)` checks and normalizes a number's text in one pass over its characters
(DynamoNumber.java), where Spark SQL took about 15 regex passes per number: 8.6 of 25 seconds
of the demo's transform at scale 15, measured on 2026-12-05. The classes come from
carve-transforms.jar, which the runtimes put on Spark's class path (jobs/runtimes/jvm.py
compiles it; `carve deploy` passes it to Glue with --extra-jars).
"""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from transforms.errors import SetupError

SOURCES = tuple(sorted(Path(__file__).parent.glob("*.java")))
JAR_NAME = "carve-transforms.jar"

def _result(text: str) -> T.StructType:
    """What each function returns: its text (NULL when refused), the size, and why it was refused."""
    return T.StructType([T.StructField(text, T.StringType()), T.StructField("size", T.LongType()),
                         T.StructField("problem", T.StringType())])


JSON_FUNCTION = "carve_dynamodb_json"
NUMBER_FUNCTION = "carve_dynamodb_number"
# Spark SQL name -> (Java class, result type)
FUNCTIONS = {
    JSON_FUNCTION: ("carve.transforms.DynamoJson", _result("json")),
    NUMBER_FUNCTION: ("carve.transforms.DynamoNumber", _result("plain")),
}

def dynamodb_json(text: Column) -> Column:
    """struct(json, size, problem) of a JSON document's text; NULL for NULL text."""
    register(SparkSession.getActiveSession())
    return F.call_udf(JSON_FUNCTION, text)


def dynamodb_number(text: Column) -> Column:
    """struct(plain, size, problem) of a number's text; NULL for NULL text (DynamoNumber.java)."""
    register(SparkSession.getActiveSession())
    return F.call_udf(NUMBER_FUNCTION, text)


def register(spark: SparkSession | None) -> None:
    """Make carve's functions callable in this session (idempotent)."""
    if spark is None:
        raise SetupError("carve's transforms need an active Spark session")
    if getattr(spark, "_carve_functions", False):
        return
    try:
        for name, (java_class, result) in FUNCTIONS.items():
            spark.udf.registerJavaFunction(name, java_class, result)
    except Exception as exc:  # py4j wraps the JVM's ClassNotFoundException
        if "ClassNotFoundException" not in str(exc) and "Can not load class" not in str(exc):
            raise
        raise SetupError(
            f"carve's Java functions ({JAR_NAME}, classes {', '.join(c for c, _ in FUNCTIONS.values())}) are not on "
            "Spark's class path. "
            "Locally, carve's local runtime builds and adds it; on AWS Glue, `carve deploy` "
            "uploads it and passes it with --extra-jars; with spark-submit, pass it with --jars."
        ) from None
    spark._carve_functions = True
