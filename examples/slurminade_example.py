"""slurminade's example, with fleetslurm: prepare, then f over 100 inputs in
bundles of 20 (5 jobs), then clean_up once they have all ended.

    python examples/slurminade_example.py

Runs on the fleet (the embedded localhost when there is no fleet_config.json);
``fleetslurm.set_dispatcher("test")`` would only print what it would submit,
``"direct"`` runs everything here.
"""

import fleetslurm

fleetslurm.update_default_configuration(time="10", mem="200M")  # options for every job


@fleetslurm.slurmify(cpus_per_task=1)  # function-specific options
def prepare():
    print("Prepare")
    return "prepared"


@fleetslurm.slurmify()
def f(foobar):
    print(f"f({foobar})")
    return foobar * foobar


@fleetslurm.slurmify()
def clean_up():
    print("Clean up")
    return "clean"


if __name__ == "__main__":
    print(f"calling f(3) here: {f(3)}")          # a slurmified function still runs here
    jid = prepare.distribute()
    with fleetslurm.Batch(max_size=20) as batch:  # bundles up to 20 calls per job
        for i in range(100):
            f.wait_for(jid).distribute(i)
        jids = batch.flush()                     # the ids of the 5 jobs it made
    last = clean_up.wait_for(jids).distribute()
    print(f"prepare: job {jid}; f: jobs {', '.join(jids)}; clean_up: job {last}")

    dispatcher = fleetslurm.get_dispatcher()
    print(f"clean_up returned {dispatcher.result(last, timeout=600)!r}")
    squares = [x for j in jids for x in dispatcher.result(j)]
    print(f"f computed {len(squares)} squares, their sum is {sum(squares)}")
    print("what f printed in the first job:", dispatcher.job(jids[0]).stdout().split()[:3], "...")
