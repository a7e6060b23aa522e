"""One construct per capability; the stacks only compose them."""
