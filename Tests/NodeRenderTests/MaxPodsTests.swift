import NodeRender
import Testing

@Suite("max pods expressions and kubeReserved (nodeadm's unit-test tables)")
struct MaxPodsTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var expression: String
        var enis = 3
        var ips = 6
        var standard = 17
        var result: Int
        var testDescription: String { expression }
    }

    @Test(
        "evaluateCustomMaxPodsExpression: values",
        arguments: [
            Case(expression: "417", result: 417),
            Case(expression: "(default_enis * (ips_per_eni - 1)) + 2", result: 17),
            Case(expression: "(default_enis * (ips_per_eni - 1)) + 3", result: 18),
            Case(expression: "(default_enis * ((ips_per_eni - 1) * 16)) + 2", result: 242),
            Case(
                expression:
                    "((default_enis * ((ips_per_eni * 16) - 1)) + 2) < 30 ? ((default_enis * ((ips_per_eni * 16) - 1)) + 2) : 30",
                result: 30),
            Case(expression: "((default_enis - 1) * (ips_per_eni - 1)) + 2", result: 12),
            Case(expression: "max_pods < 30 ? max_pods : 30", standard: 35, result: 30),
            Case(expression: "max_pods", standard: 7, result: 7),
            Case(expression: "max_pods + 2", enis: 999, ips: 9999, standard: 7, result: 9),
            Case(expression: "-(-5) * 2 % 7 + (1 == 1 && !false ? 1 : 0)", result: 4),
        ])
    func values(_ c: Case) throws {
        let expression = try MaxPodsExpression(c.expression)
        #expect(try expression.evaluate(defaultENIs: c.enis, ipsPerENI: c.ips, maxPods: c.standard) == c.result)
    }

    @Test("compile errors are reported before evaluation, naming the problem")
    func compileErrors() {
        for (text, says) in [
            ("default_enis + fake_variable", "failed to compile custom max pods expression"),
            ("99 - fake_variable", "undeclared reference to 'fake_variable'"),
            ("(default_enis + 1", "expected ')'"),
            ("max_pods +", "ends too early"),
            ("size(x)", "undeclared reference"),
            ("max_pods & 1", "unsupported character '&'"),
            ("99999999999999999999", "too large"),
        ] {
            #expect(throws: MaxPodsExpressionError.self, "\(text)") { try MaxPodsExpression(text) }
            do {
                _ = try MaxPodsExpression(text)
            } catch {
                #expect(error.description.contains(says), "\(text): \(error)")
            }
        }
    }

    @Test("evaluation errors carry nodeadm's messages")
    func evaluationErrors() throws {
        let cases: [(String, Int, Int, Int, String)] = [
            ("default_enis * 2", Int(Int32.max), 6, 17, "value must be a positive integer less than 2147483647"),
            ("max_pods - ((default_enis * (ips_per_eni - 1)) + 2)", 3, 6, 17, "max pods value 0 from custom expression"),
            ("max_pods - 2", 3, 6, 1, "max pods value -1 "),
            (
                "true", 3, 6, 17,
                "could not interpret result \"true\" from evaluation of custom max pods expression as an integer: type conversion error from 'bool' to 'int'"
            ),
            ("max_pods / (default_enis - 3)", 3, 6, 17, "division by zero"),
            ("max_pods + true", 3, 6, 17, "no such overload"),
            ("9223372036854775807 + max_pods", 3, 6, 17, "integer overflow"),
        ]
        for (text, enis, ips, standard, says) in cases {
            let expression = try MaxPodsExpression(text)
            #expect(throws: MaxPodsExpressionError.self, "\(text)") {
                try expression.evaluate(defaultENIs: enis, ipsPerENI: ips, maxPods: standard)
            }
            do {
                _ = try expression.evaluate(defaultENIs: enis, ipsPerENI: ips, maxPods: standard)
            } catch {
                #expect(error.description.contains(says), "\(text): \(error)")
            }
        }
    }

    @Test(
        "kubeReserved cpu for the vCPU counts of nodeadm's table",
        arguments: zip(
            [1, 2, 3, 4, 8, 16, 32, 48, 64, 96, 128, 192, 448],
            [60, 70, 75, 80, 90, 110, 150, 190, 230, 310, 390, 550, 1190]))
    func cpu(vcpus: Int, millicores: Int) {
        #expect(KubeReserved.cpuMillicores(onlineCPUs: vcpus) == millicores)
    }

    @Test("kubeReserved memory and standard max pods")
    func memoryAndMaxPods() {
        for (pods, mebibytes) in [(58, 893), (44, 739), (60, 915), (110, 1465), (17, 442), (29, 574), (234, 2829)] {
            #expect(KubeReserved.memoryMebibytes(maxPods: pods) == mebibytes)
        }
        #expect(KubeReserved.standardMaxPods(maxENIs: 3, ipv4PerENI: 6) == 17)
        #expect(KubeReserved.standardMaxPods(maxENIs: 6, ipv4PerENI: 12) == 68)
        #expect(KubeReserved.standardMaxPods(maxENIs: 4, ipv4PerENI: 15) == 58)
    }
}
