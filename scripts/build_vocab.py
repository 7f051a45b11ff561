"""Build the word vocabulary of every LIBERO instruction (all suites incl. libero_90)."""

from bench.models.tokenizer import DEFAULT_VOCAB, WordTokenizer
from bench.suites.libero import LIBERO_SUITES, _benchmark


def main() -> None:
    instructions = []
    for name in LIBERO_SUITES:
        bench = _benchmark(name)
        instructions += [bench.get_task(i).language for i in range(bench.n_tasks)]
    tok = WordTokenizer.from_instructions(instructions)
    tok.save(DEFAULT_VOCAB)
    longest = max(len(tok.encode(s)) for s in instructions)
    print(f"{len(instructions)} instructions, {len(tok)} tokens, longest {longest} words "
          f"-> {DEFAULT_VOCAB}")


if __name__ == "__main__":
    main()
