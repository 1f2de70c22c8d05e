"""A small module to complete: the body of `fibonacci` is missing."""


def fibonacci(n):
    """Return the n-th Fibonacci number."""
    

if __name__ == "__main__":
    print([fibonacci(i) for i in range(10)])
