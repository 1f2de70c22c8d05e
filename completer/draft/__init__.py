"""`completer draft train`: an EAGLE-3 head for the target, trained on the user's own code.

examples.py cuts training examples from source files the way completer builds prompts;
hidden.py runs the target over them and stores its hidden states in the layout of the
`speculators` library; train.py hands those to speculators' EAGLE-3 trainer and exports a
head that vLLM's ``eagle3`` method loads.
"""
