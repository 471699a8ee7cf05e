#!/usr/bin/python
# A stand-in for nodeexec_release: reports the sub-steps it is given (each timed as the module times its
# own) and a node report, and fails with fail_msg when set, as a phase does.
import datetime
import time

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(
        steps=dict(type="list", elements="dict", required=True),
        report=dict(type="dict", default={}),
        fail_msg=dict(type="str", default=""),
    ))
    steps = []
    for s in module.params["steps"]:
        start = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        step = dict(s, start=start, duration=0.25)
        steps.append(step)
        time.sleep(0.01)
    result = dict(changed=any(s.get("status") == "changed" for s in steps), steps=steps, report=module.params["report"])
    if module.params["fail_msg"]:
        module.fail_json(msg=module.params["fail_msg"], **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
