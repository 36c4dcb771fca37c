"""The service layer: one function per use case.

Each takes what it works with as arguments: a unit-of-work factory, the file
store, the task queue, the predictor provider, the clock. The entry points (web,
worker, CLI, `boneage up`) only translate requests into these calls, and the unit
tests drive them with fakes (tests/unit/fakes.py).

    assessments    submit_assessment, run_assessment
    model_registry register_model, activate_model, list_models
    demo_model     ensure_demo_model
    readings       add_reading, import_readings_csv (ground truth from readers)
    audits         run_audit, run_scheduled_audit, remove_synthetic (audit_metrics: the numbers)
    audit_plots    the audits page's trend plots (matplotlib)
    demo_history   fill_demo_history (a synthetic history through the real model)
    readings_dataset export_readings_dataset (readings as training data)
    queue          the Celery configuration and the task queue adapter
    predictors     the model loaded once per worker process
"""
