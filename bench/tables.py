"""Figures for the benchmark tables: a median with its range, as text."""
import statistics


def spread(values, unit, digits=1):
    """`median unit (min-max)` of the values that are not None, or "-"."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    med = statistics.median(values)
    return f"{med:.{digits}f} {unit} ({min(values):.{digits}f}-{max(values):.{digits}f})"
