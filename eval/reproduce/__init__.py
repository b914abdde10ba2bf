"""`python -m eval.reproduce`: the paper's reproduction (`cli`) and its report (`report`)."""
