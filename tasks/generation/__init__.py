"""Dataset generation from a Data Designer-style config: config models, samplers, templates, LLM calls.

Module map, in the order a run uses them:

- ``source.from_config``: a config from a dict, YAML/JSON text, a file or an http(s) URL;
- ``config``: pydantic models of ``builder_config.json``; every unsupported item reported at once;
- ``plan.build_plan``: the config checked as a whole and compiled (templates, schemas, generation order,
  using ``dependencies`` and the sandboxed ``templates``);
- ``batch.generate_batch`` (a Prefect task): ``samplers``, expressions, ``llm`` columns, ``processors``, then
  ``batch_writer`` (atomic Parquet files with content-defined chunking and a page index);
- ``state`` (folder layout, resume), ``checkpoint`` (background commits to the Hub), ``metadata``
  (``metadata.json``), ``result.GeneratedDataset`` (what the push flow accepts).

The flow itself is ``flows.generate.generate_dataset``. Submodules are imported explicitly (nothing here), so
importing the result type does not pull the generation machinery in.
"""
