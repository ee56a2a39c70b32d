"""Layer 7, report: records, the paper table, companions, figures, summary; the labels, colours and
order of the methods (legend.py). Never trains or decodes."""
