"""The one pipeline: a model and its data -> variants -> measurement -> checks -> the bundle.

    prepare.py   model + data -> Study (preprocessing, splits, calibration set)
    study.py     Study (what every stage shares) and the stage protocol
    variants.py  Candidate, build, describe (the one variant entry), the float reference
    measure.py   one streamed evaluation pass, within_budget
    stages.py    the stages run in order (plain variants, recovery ladder)
    devices.py   every variant on the target devices over SSH (the fleet), parity vs host
    run.py       run(config, out_dir) and execute(study, final_dir): THE front door
    bundle.py    deploy.json, preprocessing.json, labels.txt, report, manifest

Modules are imported by their own names (`from edgequant.flow import run`); this file imports
nothing so that the recovery ladder (edgequant/search/ladder.py) can import the flow's
pieces without a circle.
"""
