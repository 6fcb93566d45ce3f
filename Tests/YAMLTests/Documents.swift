/// Hand-written NodeConfig-shaped documents, one or more YAML features each. Every one is read by both readers and
/// must give the same tree (or the same error).
enum Documents {
    static let all: [(name: String, text: String)] = [
        (
            "minimal block mapping",
            """
            apiVersion: node.eks.aws/v1alpha1
            kind: NodeConfig
            spec:
              cluster:
                name: my-cluster
                apiServerEndpoint: https://example.com
                certificateAuthority: Y2VydGlmaWNhdGVBdXRob3JpdHk=
                cidr: 10.100.0.0/16

            """
        ),
        (
            "comments everywhere",
            """
            # user data for the node group
            apiVersion: node.eks.aws/v1alpha1 # the API
            kind: NodeConfig   # the kind
            # between keys

            spec:   # the spec
              cluster:
                # indented comment
                name: my-cluster#not-a-comment
                apiServerEndpoint: https://example.com  #comment after two spaces
            # trailing comment at column 1
            """
        ),
        (
            "document start marker and end marker",
            """
            ---
            apiVersion: node.eks.aws/v1alpha1
            kind: NodeConfig
            ...

            """
        ),
        (
            "YAML directive",
            """
            %YAML 1.2
            ---
            apiVersion: node.eks.aws/v1alpha1
            kind: NodeConfig

            """
        ),
        (
            "only the first document counts",
            """
            ---
            apiVersion: node.eks.aws/v1alpha1
            kind: NodeConfig
            ---
            apiVersion: node.eks.aws/v1alpha1
            kind: Other

            """
        ),
        (
            "block sequences indented and not",
            """
            spec:
              kubelet:
                flags:
                  - --node-labels=a=b
                  - --register-with-taints=x=y:NoSchedule
                config:
                  clusterDNS:
                  - 10.100.0.10
                  - 10.100.0.11

            """
        ),
        (
            "nested inline sequences",
            """
            matrix:
            - - a
              - b
            - - - c
                - d
              - e
            -   - f

            """
        ),
        (
            "compact mappings in sequence items",
            """
            spec:
              instance:
                localStorage:
                  strategy: RAID0
              containerd:
                runtimes:
                - name: nvidia
                  path: /usr/bin/nvidia-container-runtime
                  options:
                    BinaryName: nvidia
                - name: neuron
                  path: /opt/aws/neuron/bin/oci_neuron_hook_wrapper.sh

            """
        ),
        (
            "flow mappings and sequences",
            """
            spec:
              kubelet:
                config: {maxPods: 110, clusterDNS: [10.100.0.10, "10.100.0.11"], evictionHard: {memory.available: 100Mi}}
                flags: [--v=2, '--node-labels=a=b']

            """
        ),
        (
            "multi-line flow collections with trailing commas",
            """
            spec:
              kubelet:
                config: {
                  maxPods: 58,
                  kubeReserved: {
                    cpu: 70m,
                    memory: 574Mi,
                  },
                  clusterDNS: [
                    10.100.0.10,
                    10.100.0.11,
                  ],
                }

            """
        ),
        (
            "quoted keys in flow and block",
            """
            "apiVersion": "node.eks.aws/v1alpha1"
            'kind': 'NodeConfig'
            spec: {"cluster": {'name': "my-cluster", "cidr": '10.100.0.0/16'}}

            """
        ),
        (
            "plain scalars with colons and hashes",
            """
            endpoint: https://ABCDEF.gr7.us-west-2.eks.amazonaws.com
            time: 12:30:45
            pair: a:b
            ratio: 1:2:3
            anchor: page#section
            ipv6: fd00::1
            image: 602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/pause:3.5
            empty:
            tilde: ~

            """
        ),
        (
            "multi-line plain scalars",
            """
            description: this value
              continues on the next line
              and the next

              after an empty line
            next: value

            """
        ),
        (
            "single-quoted strings",
            """
            a: 'it''s quoted'
            b: ''
            c: 'with "double" inside'
            d: 'folded
              across lines

              with an empty line'
            e: '  leading and trailing  '

            """
        ),
        (
            "double-quoted escapes",
            #"""
            a: "tab\there, newline\nthere, quote \" and backslash \\ and slash \/"
            b: "\0\a\b\t\n\v\f\r\e\ \"\/\\\N\_\L\P"
            c: "\x41\x7e\xE9 \u00e9\u20AC \U0001F600"
            d: "escaped \
              line break"
            e: "folded
              line

              and an empty one"
            f: "a\	tab escape"

            """#
        ),
        (
            "literal block scalars with chomping",
            """
            clip: |
              line 1
              line 2

            strip: |-
              line 1
              line 2

            keep: |+
              line 1
              line 2


            last: done

            """
        ),
        (
            "folded block scalars",
            """
            folded: >
              one
              two

              three
                indented more
              back
            strip: >-
              a
              b
            keep: >+
              a

            end: 1

            """
        ),
        (
            "explicit indentation indicators",
            """
            script: |2
                indented four, indicator two
              back to two
            other: >1
               three spaces
            next: |-2
               x

            """
        ),
        (
            "block scalar in a sequence and an empty one",
            """
            - |
              first
            - >-
              second
            - |
            - end

            """
        ),
        (
            "inline containerd TOML",
            """
            apiVersion: node.eks.aws/v1alpha1
            kind: NodeConfig
            spec:
              containerd:
                config: |
                  [plugins."io.containerd.grpc.v1.cri".containerd]
                  discard_unpacked_layers = false

                  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
                  endpoint = ["https://mirror.example.com"]

            """
        ),
        (
            "anchors and aliases",
            """
            defaults: &defaults
              maxPods: 58
              clusterDNS: &dns [10.100.0.10]
            first: *defaults
            second:
              dns: *dns
              value: &v plain
              again: *v

            """
        ),
        (
            "merge key is an ordinary key",
            """
            base: &base {a: 1}
            derived:
              <<: *base
              b: 2

            """
        ),
        (
            "tags parsed and mostly ignored",
            """
            a: !!str 123
            b: !!int "42"
            c: !custom value
            d: !<tag:yaml.org,2002:str> true
            e: ! 12
            f: !!str
            g: !!map {x: 1}
            h: !!seq [1]

            """
        ),
        (
            "TAG directive",
            """
            %TAG !e! tag:example.com,2000:app/
            ---
            a: !e!foo bar

            """
        ),
        (
            "sequence values at key indentation",
            """
            spec:
              kubelet:
                flags:
                - --a
                - --b
                config:
                  list:
                  - x
                  - y
                after: z

            """
        ),
        (
            "empty values",
            """
            spec:
              cluster:
              kubelet:
                config:
                flags: []
              containerd: {}

            """
        ),
        (
            "explicit keys",
            """
            ? simple
            : value
            ? [complex, key]
            : other
            ?
            : empty key

            """
        ),
        (
            "BOM at the start",
            "\u{FEFF}apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\n"
        ),
        (
            "CRLF line ends",
            "apiVersion: node.eks.aws/v1alpha1\r\nkind: NodeConfig\r\nspec:\r\n  text: |\r\n    a\r\n    b\r\n  list:\r\n  - 1\r\n"
        ),
        (
            "CR only line ends",
            "a: 1\rb:\r  - x\r"
        ),
        (
            "no trailing newline",
            "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig"
        ),
        (
            "unicode keys and values",
            """
            名前: クラスター
            emoji: "😀 and \\u00e9"
            accents: café crème
            "ключ": значение
            mixed: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 text

            """
        ),
        (
            "JSON document",
            #"""
            {"apiVersion": "node.eks.aws/v1alpha1", "kind": "NodeConfig", "spec": {"cluster": {"name": "c", "cidr": "10.100.0.0/16"}, "kubelet": {"config": {"maxPods": 58, "shutdownGracePeriod": "30s", "featureGates": {"X": true}}, "flags": ["--a", "--b"]}}}
            """#
        ),
        (
            "pretty-printed JSON",
            #"""
            {
              "apiVersion": "node.eks.aws/v1alpha1",
              "kind": "NodeConfig",
              "spec": {
                "kubelet": {
                  "config": {
                    "maxPods": 110,
                    "evictionHard": {"memory.available": "5%"},
                    "ratio": 0.5,
                    "enabled": false,
                    "nothing": null,
                    "escapes": "quote \" slash \/ backslash \\ tab \t unicode \u00e9"
                  }
                }
              }
            }

            """#
        ),
        (
            "numbers and booleans stay scalars",
            """
            int: 42
            negative: -17
            hex: 0x1F
            octal: 0o17
            float: 3.14
            exponent: 1e-3
            infinity: .inf
            nan: .NaN
            yes: yes
            on: On
            null: null

            """
        ),
        (
            "long keys and values",
            "key_" + String(repeating: "k", count: 200) + ": " + String(repeating: "v", count: 2000) + "\n"
        ),
        (
            "deeply indented",
            """
            a:
              b:
                c:
                  d:
                    e:
                      f:
                        g: deep
                      h: [1, [2, [3, {i: 4}]]]

            """
        ),
        (
            "document with only comments",
            """
            # nothing here
              # or here

            """
        ),
        (
            "empty document",
            ""
        ),
        (
            "explicit empty document",
            "---\n"
        ),
        (
            "top-level scalar",
            "just a scalar\n"
        ),
        (
            "top-level sequence",
            "- a\n- b: c\n  d: e\n- [f]\n"
        ),
        (
            "tabs after values and in flow",
            "a: 1\t# tab before comment\nb: {x: 1,\ty: 2}\nc:\t3\n"
        ),
        (
            "quoted scalars spanning lines in flow",
            """
            list: ["a
              b", 'c
              d']

            """
        ),
        (
            "flow sequence with a single-pair mapping",
            """
            pairs: [a: 1, b: 2, c]
            explicit: [? k : v]

            """
        ),
        (
            "document end without start",
            """
            a: 1
            ...
            b: 2

            """
        ),
        (
            "nodeadm MIME part body",
            """
            ---
            apiVersion: node.eks.aws/v1alpha1
            kind: NodeConfig
            spec:
              kubelet:
                config:
                  systemReserved:
                    cpu: 150m

            """
        ),
        (
            "keys with spaces and special characters",
            """
            key with spaces: value
            key-with-dashes: 1
            key.with.dots: 2
            key/with/slashes: 3
            "key: with colon": 4
            ? key # with comment
            : 5

            """
        ),
        (
            "anchor on a sequence used twice",
            """
            a: &list
              - x
              - y
            b: *list
            c: [*list, *list]

            """
        ),
        (
            "plain scalar starting with indicators followed by non-space",
            """
            a: -dash
            b: ?question
            c: :colon
            d: --flag=value

            """
        ),
    ]
}
