"""Checks the analyzer and the parameter-cache rule against real compiler output.

  python tools/edgetpu_validate.py --pairs=../shared/data/coral --logs=tests/data/compiler_f*.txt
Prints, per compiled pair, whether the predicted CPU ops equal the real ones and the predicted vs
real on-chip parameter bytes; per compiler log, the cache capacity it implies and whether the
fits/streams rule agrees. Writes JSON with --output_json. Exit status 1 if any pair mismatches.
"""

from edgequant import atomic, cli

cli.quiet_tensorflow()

from absl import flags  # noqa: E402

_PAIRS = flags.DEFINE_string("pairs", None, "Folder with X.tflite + X_edgetpu.tflite pairs.")
_LOGS = flags.DEFINE_list("logs", [], "Compiler log texts (stdout or .log files).")
_JSON = flags.DEFINE_string("output_json", None, "Also write the rows as JSON here.")
cli.define_verbose_flag()


def main(argv):
    import glob

    from edgequant.edgetpu import validate

    pairs = validate.check_pairs(_PAIRS.value) if _PAIRS.value else []
    logs = validate.check_logs(sorted({p for g in _LOGS.value for p in glob.glob(g)}))
    mib = 1024**2
    for r in pairs:
        print(
            f"{r['model']:<42} {'exact' if r['matches'] else 'DIFFERS':<8} "
            f"{r['predicted_mapped']}/{r['ops']} mapped; parameters predicted "
            f"{r['predicted_parameter_bytes']:,} B vs compiled {r['real_caching_bytes']:,} B "
            f"({r['cache_verdict']})"
            + (
                f"; optimistic: {', '.join(r['optimistic_head_ops'])}"
                if r["optimistic_head_ops"]
                else ""
            )
        )
    if pairs:
        exact = sum(r["matches"] for r in pairs)
        print(f"analyzer exact on {exact}/{len(pairs)} compiled pairs")
        optimistic = sum(len(r["optimistic_head_ops"]) for r in pairs)
        print(f"head ops predicted mapped but left on the CPU: {optimistic}")
    for r in logs:
        cap = f"{r['capacity'] / mib:.2f} MiB" if r["capacity"] else "?"
        print(
            f"{r['log']:<20} v{r['version']}: on-chip {r['on_chip_used'] / mib:.2f} MiB, "
            f"off-chip {(r['off_chip'] or 0) / 1024:.2f} KiB, cache {cap}; "
            f"predicted {r['predicted']}, actual {r['actual']}"
        )
    if _JSON.value:
        atomic.write_json(_JSON.value, {"pairs": pairs, "logs": logs})
    return 0 if all(r["matches"] for r in pairs) else 1


if __name__ == "__main__":
    cli.run(main)
