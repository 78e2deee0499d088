"""Malformed command lines that must each be answered by one ``error:`` line and exit code 2 before torch,
Norse or Brian2 is imported.  Used by ``tests/cli/test_errors_cli.py`` and ``benchmarks/cli_errors.py``.

``{tmp}`` in an argument stands for a scratch directory (it exists and is empty).
"""

RHM = ["--v", "8", "--m", "4", "--nc", "8", "--s", "2", "--L", "2"]
MISSING = "{tmp}/missing"  # a directory that does not exist (inside the scratch one, so nothing lands elsewhere)

BAD_INPUTS: list[tuple[list[str], str]] = [  # (arguments, a phrase the error line must hold)
    (["trian"], "No such command"),
    (["train", "--seed", "a"], "'a' is not a valid integer"),
    (["train", "--arch", "xyz"], "'xyz' is not one of"),
    (["train", "--rule", "bp", *RHM, "--P", "abc"], "cannot read P = 'abc'"),
    (["train", "--rule", "bp", *RHM, "--P", "100000"], "exceeds P_max = 512"),
    (["train", "--rule", "bp", *RHM, "--P", "16", "--P-test", "-1"], "P_test must be >= 0"),
    (["train", "--rule", "bp", "--v", "0", "--P", "16"], "v must be >= 2"),
    (["train", "--rule", "bp", "--backend", "spinnaker", "--P", "16"], "unknown backend 'spinnaker'"),
    (["train", "--rule", "bpp", *RHM, "--P", "16"], "unknown rule 'bpp'; valid: "),
    (["curve", "--rule", "bp,dfaa", *RHM, "--P", "16", "--out", "{tmp}/sweep"], "unknown rule 'dfaa'; valid: "),
    (["train", "--config", f"{MISSING}/run.toml"], "does not exist"),
    (["train", "--rule", "bp", *RHM, "--P", "16", "--option", "noequals"], "expected key=value"),
    (["train", "--rule", "bp", *RHM, "--P", "16", "--out", f"{MISSING}/r.json"], "does not exist"),
    (["train", "--rule", "bp", *RHM, "--P", "16", "--save-net", f"{MISSING}/n.npz"], "does not exist"),
    (["curve", "--rule", "bp", *RHM, "--P", "4y", "--out", "{tmp}/sweep"], "cannot read P = '4y'"),
    (["curve", "--rule", "bp", *RHM, "--P", "1000", "--out", "{tmp}/sweep"], "exceeds P_max = 512"),
    (["curve", "--rule", "bp", *RHM, "--P", "16", "--seeds", "a", "--out", "{tmp}/sweep"], "cannot read seeds"),
    (["curve", "--rule", "bp", *RHM, "--P", "16", "--out", f"{MISSING}/dir"], "does not exist"),
    (["curve", "--rule", "bp", *RHM, "--P", "16", "--workers", "0", "--out", "{tmp}/sweep"], "workers must be >= 1"),
    (["curve", "--rule", "bp", *RHM, "--P", "16", "--workers", "x", "--out", "{tmp}/sweep"], "not a valid integer"),
    (["curve", "--P", "16", "--out", "{tmp}/sweep"], "give --rule"),
    (["curve", "--config", f"{MISSING}/sweep.toml"], "does not exist"),
    (["pstar", f"{MISSING}/sweep"], "does not exist"),
    (["pstar", "{tmp}", "--eps", "2"], "--eps must lie in (0, 1)"),
    (["plot", "{tmp}", "--out", f"{MISSING}/figures"], "does not exist"),
    (["export", f"{MISSING}/net.npz", "--out", "{tmp}/net.nir"], "does not exist"),
    (["export", "{tmp}", "--out", "{tmp}/net.nir"], "is a directory"),
    (["deploy", f"{MISSING}/net.nir"], "does not exist"),
    (["generate", *RHM, "--P", "16", "--out", f"{MISSING}/data.npz"], "does not exist"),
    (["generate", *RHM, "--P", "100000", "--out", "{tmp}/data.npz"], "exceeds P_max = 512"),
    (["dynamics", "--rule", "clapp", "--out", f"{MISSING}/dynamics"], "does not exist"),
    (["train", "--rule", "dfa", "--neuron", "adex", *RHM, "--P", "16"], "needs --backend brian2"),
    (["train", "--rule", "dfa", "--backend", "brian2", "--neuron", "hh", *RHM, "--P", "16"], "unknown spiking.neuron 'hh'"),
    (["train", "--rule", "dfa", "--backend", "brian2", "--neuron", "adex", *RHM, "--P", "16", "--option",
      "spiking.neuron_options.delta_t=-1"], "adex: delta_t and tau_w must be > 0"),
    (["train", "--rule", "dfa", "--backend", "brian2", "--neuron", "cond", *RHM, "--P", "16", "--option",
      "spiking.neuron_options.e_exc=0.9"], "e_exc > v_th"),
    (["train", "--rule", "dfa", "--backend", "brian2", "--neuron", "two-compartment", *RHM, "--P", "16", "--option",
      "spiking.neuron_options.g_c=0"], "g_c (the coupling) must be > 0"),
    (["train", "--rule", "clapp", "--backend", "brian2", "--neuron", "two-compartment", *RHM, "--P", "16", "--option",
      "spiking.neuron_options.inject=-1"], "inject (the delivered current per rms signal) must be > 0"),
    (["train", "--rule", "dfa", "--backend", "brian2", *RHM, "--P", "16", "--option", "spiking.modulator_delay=0.0025"],
     "spiking.modulator_delay = 0.0025 s is not a whole number of time steps"),
]
