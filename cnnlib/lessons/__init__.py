"""What the lessons show: layer tables, figures, widgets, published reference figures, the
"spot the bug" blocks, gradient norms, confusion matrices and the in-notebook ablations.
"""
