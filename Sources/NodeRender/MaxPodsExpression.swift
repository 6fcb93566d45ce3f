/// `spec.kubelet.maxPodsExpression`: the subset of CEL nodeadm's users write — integer
/// literals, `true`/`false`, the variables `default_enis`, `ips_per_eni` and `max_pods`,
/// `+ - * / %`, unary `-` and `!`, comparisons, `&&`, `||`, `? :` and parentheses — with CEL's
/// 64-bit overflow and division errors. Anything else is a compile error, never a silent fallback.
public struct MaxPodsExpression: Sendable, Equatable {
    public static let variables = ["default_enis", "ips_per_eni", "max_pods"]

    public let source: String
    let root: Expression

    indirect enum Expression: Sendable, Equatable {
        case int(Int64)
        case bool(Bool)
        case variable(String)
        case unary(String, Expression)
        case binary(String, Expression, Expression)
        case conditional(Expression, Expression, Expression)
    }

    enum Value: Equatable {
        case int(Int64)
        case bool(Bool)

        var typeName: String {
            switch self {
            case .int: "int"
            case .bool: "bool"
            }
        }
    }

    /// Parses (CEL "compiles") the expression.
    public init(_ source: String) throws(MaxPodsExpressionError) {
        self.source = source
        guard source.utf8.count <= 4096 else {
            throw MaxPodsExpressionError.compile(source, "longer than 4096 characters")
        }
        var parser = Parser(tokens: try Self.tokenize(source), source: source)
        root = try parser.expression()
        guard parser.index == parser.tokens.count else {
            throw MaxPodsExpressionError.compile(source, "unexpected '\(parser.tokens[parser.index].text)'")
        }
    }

    /// The value for these variables; it must be an integer in 1...2147483646 (nodeadm's bound).
    public func evaluate(defaultENIs: Int, ipsPerENI: Int, maxPods: Int) throws(MaxPodsExpressionError) -> Int {
        let values = ["default_enis": Int64(defaultENIs), "ips_per_eni": Int64(ipsPerENI), "max_pods": Int64(maxPods)]
        let result = try evaluate(root, values)
        guard case .int(let number) = result else {
            throw .notAnInteger(
                source,
                "could not interpret result \"\(result == .bool(true) ? "true" : "false")\" from evaluation of custom max pods expression as an integer: type conversion error from 'bool' to 'int'"
            )
        }
        guard number > 0, number < Int64(Int32.max) else {
            throw .outOfRange(
                source,
                "max pods value \(number) from custom expression evaluation is invalid: value must be a positive integer less than 2147483647"
            )
        }
        return Int(number)
    }

    func evaluate(_ expression: Expression, _ variables: [String: Int64]) throws(MaxPodsExpressionError) -> Value {
        switch expression {
        case .int(let value): return .int(value)
        case .bool(let value): return .bool(value)
        case .variable(let name): return .int(variables[name] ?? 0)
        case .unary(let op, let operand):
            let value = try evaluate(operand, variables)
            switch (op, value) {
            case ("-", .int(let number)):
                guard number != Int64.min else { throw .evaluation(source, "integer overflow") }
                return .int(-number)
            case ("!", .bool(let flag)): return .bool(!flag)
            default: throw .evaluation(source, "no such overload: \(op)\(value.typeName)")
            }
        case .conditional(let condition, let then, let otherwise):
            guard case .bool(let flag) = try evaluate(condition, variables) else {
                throw .evaluation(source, "the condition of '? :' must be a bool")
            }
            return try evaluate(flag ? then : otherwise, variables)
        case .binary(let op, let left, let right):
            if op == "&&" || op == "||" {
                guard case .bool(let a) = try evaluate(left, variables) else {
                    throw .evaluation(source, "no such overload: \(op) on int")
                }
                if op == "&&" && !a { return .bool(false) }
                if op == "||" && a { return .bool(true) }
                guard case .bool(let b) = try evaluate(right, variables) else {
                    throw .evaluation(source, "no such overload: \(op) on int")
                }
                return .bool(b)
            }
            let a = try evaluate(left, variables)
            let b = try evaluate(right, variables)
            switch (a, b) {
            case (.int(let x), .int(let y)): return try arithmetic(op, x, y)
            case (.bool(let x), .bool(let y)) where op == "==" || op == "!=":
                return .bool(op == "==" ? x == y : x != y)
            default:
                throw .evaluation(source, "no such overload: \(a.typeName) \(op) \(b.typeName)")
            }
        }
    }

    func arithmetic(_ op: String, _ x: Int64, _ y: Int64) throws(MaxPodsExpressionError) -> Value {
        func checked(_ result: (partialValue: Int64, overflow: Bool)) throws(MaxPodsExpressionError) -> Value {
            guard !result.overflow else { throw .evaluation(source, "integer overflow") }
            return .int(result.partialValue)
        }
        switch op {
        case "+": return try checked(x.addingReportingOverflow(y))
        case "-": return try checked(x.subtractingReportingOverflow(y))
        case "*": return try checked(x.multipliedReportingOverflow(by: y))
        case "/", "%":
            guard y != 0 else { throw .evaluation(source, op == "/" ? "division by zero" : "modulus by zero") }
            return try checked(op == "/" ? x.dividedReportingOverflow(by: y) : x.remainderReportingOverflow(dividingBy: y))
        case "<": return .bool(x < y)
        case "<=": return .bool(x <= y)
        case ">": return .bool(x > y)
        case ">=": return .bool(x >= y)
        case "==": return .bool(x == y)
        default: return .bool(x != y)
        }
    }

    struct Token: Equatable {
        var text: String
        var offset: Int
    }

    static func tokenize(_ source: String) throws(MaxPodsExpressionError) -> [Token] {
        let chars = Array(source)
        var tokens: [Token] = []
        var index = 0
        while index < chars.count {
            let char = chars[index]
            if char.isWhitespace {
                index += 1
            } else if char.isASCII && char.isNumber {
                let start = index
                while index < chars.count, chars[index].isASCII, chars[index].isNumber { index += 1 }
                tokens.append(Token(text: String(chars[start..<index]), offset: start))
            } else if char.isASCII && (char.isLetter || char == "_") {
                let start = index
                while index < chars.count, chars[index].isASCII,
                    chars[index].isLetter || chars[index].isNumber || chars[index] == "_"
                {
                    index += 1
                }
                tokens.append(Token(text: String(chars[start..<index]), offset: start))
            } else {
                let two = index + 1 < chars.count ? String(chars[index...index + 1]) : ""
                if ["<=", ">=", "==", "!=", "&&", "||"].contains(two) {
                    tokens.append(Token(text: two, offset: index))
                    index += 2
                } else if "+-*/%()<>?:!".contains(char) {
                    tokens.append(Token(text: String(char), offset: index))
                    index += 1
                } else {
                    throw .compile(source, "unsupported character '\(char)' at offset \(index)")
                }
            }
        }
        return tokens
    }

    /// Precedence climbing, CEL's precedence: `?:` < `||` < `&&` < relations < `+ -` < `* / %` < unary.
    struct Parser {
        let tokens: [Token]
        let source: String
        var index = 0
        /// Nesting of parentheses, `? :` and unary operators (CEL limits recursion too).
        var depth = 0
        static let maxDepth = 100

        mutating func enter() throws(MaxPodsExpressionError) {
            depth += 1
            if depth > Self.maxDepth {
                throw .compile(source, "nested too deeply (more than \(Self.maxDepth) levels)")
            }
        }

        var peek: String? { index < tokens.count ? tokens[index].text : nil }

        mutating func expect(_ text: String) throws(MaxPodsExpressionError) {
            guard peek == text else {
                throw .compile(source, "expected '\(text)'" + (peek.map { ", found '\($0)'" } ?? " at the end"))
            }
            index += 1
        }

        mutating func expression() throws(MaxPodsExpressionError) -> Expression {
            try enter()
            defer { depth -= 1 }
            let condition = try binary(0)
            guard peek == "?" else { return condition }
            index += 1
            let then = try expression()
            try expect(":")
            return .conditional(condition, then, try expression())
        }

        static let levels: [[String]] = [["||"], ["&&"], ["<", "<=", ">", ">=", "==", "!="], ["+", "-"], ["*", "/", "%"]]

        mutating func binary(_ level: Int) throws(MaxPodsExpressionError) -> Expression {
            guard level < Self.levels.count else { return try unary() }
            var left = try binary(level + 1)
            while let op = peek, Self.levels[level].contains(op) {
                index += 1
                left = .binary(op, left, try binary(level + 1))
            }
            return left
        }

        mutating func unary() throws(MaxPodsExpressionError) -> Expression {
            if let op = peek, op == "-" || op == "!" {
                index += 1
                try enter()
                defer { depth -= 1 }
                return .unary(op, try unary())
            }
            return try primary()
        }

        mutating func primary() throws(MaxPodsExpressionError) -> Expression {
            guard let token = peek else { throw .compile(source, "the expression ends too early") }
            index += 1
            if token == "(" {
                let inner = try expression()
                try expect(")")
                return inner
            }
            if let number = Int64(token) { return .int(number) }
            if token.first?.isNumber == true { throw .compile(source, "integer literal \(token) is too large") }
            if token == "true" || token == "false" { return .bool(token == "true") }
            if MaxPodsExpression.variables.contains(token) { return .variable(token) }
            if token.first?.isLetter == true || token.first == "_" {
                throw .compile(
                    source,
                    "undeclared reference to '\(token)' (the variables are \(MaxPodsExpression.variables.joined(separator: ", ")))"
                )
            }
            throw .compile(source, "unexpected '\(token)'")
        }
    }
}

public enum MaxPodsExpressionError: Error, Sendable, Equatable, CustomStringConvertible {
    case compile(String, String)
    case evaluation(String, String)
    case notAnInteger(String, String)
    case outOfRange(String, String)

    public var description: String {
        switch self {
        case .compile(let source, let reason):
            "failed to compile custom max pods expression '\(Self.shown(source))': \(reason)"
        case .evaluation(let source, let reason):
            "failed to evaluate custom max pods expression '\(Self.shown(source))': \(reason)"
        case .notAnInteger(_, let message), .outOfRange(_, let message):
            message
        }
    }

    /// The expression as quoted in a message: control characters escaped, at most 120 characters.
    static func shown(_ source: String) -> String {
        var out = ""
        for scalar in source.unicodeScalars.prefix(120) {
            if scalar.properties.generalCategory == .control {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return source.unicodeScalars.count > 120 ? out + "…" : out
    }
}
