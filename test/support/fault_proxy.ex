defmodule ObjectStoreX.FaultProxy do
  @moduledoc """
  A fault-injecting HTTP/1.1 proxy on 127.0.0.1, placed between a store and a real test server
  (the store's endpoint is the proxy's URL). Requests are forwarded unchanged, one per
  connection, except those that match a rule: the proxy reads their body and answers with an
  error status instead, every time, so that the client's retries run out.

      proxy = FaultProxy.start!("http://127.0.0.1:4566", [{"PUT", ~r/[?&]partNumber=2(&|$)/, 500}])
      store = TestBackends.store!(:s3, endpoint: FaultProxy.url(proxy))

  Every request is recorded (method, target, and `:forwarded` or `{:failed, status}`) before it
  is answered, so the test can count attempts and see what was let through. Only loopback
  upstreams are accepted.
  """

  alias ObjectStoreX.{TestHelpers, TestHTTP}

  @enforce_keys [:port, :log]
  defstruct [:port, :log]

  @typedoc """
  `{method, pattern matched against the request target, action}`: a status to answer instead
  of forwarding, `:drop_response` to forward the request and close the client's connection
  without its answer (the server did the work; the client never learns it), or `{:delay, ms}`
  to forward it after a pause (a slow server). A fourth element
  limits how many matching requests the rule applies to; later ones are forwarded.
  """
  @type rule ::
          {String.t(), Regex.t(), action()} | {String.t(), Regex.t(), action(), pos_integer()}
  @type action :: pos_integer() | :drop_response | {:delay, non_neg_integer()}
  @type t :: %__MODULE__{port: :inet.port_number(), log: :ets.tid()}

  @piece 1_048_576
  @timeout 30_000

  @doc """
  Starts a proxy to `upstream` (an `http://` URL on loopback) applying `rules`; the first rule
  that matches a request decides. The proxy lives as long as the calling process.
  """
  @spec start!(String.t(), [rule()]) :: t()
  def start!(upstream, rules) do
    TestHelpers.assert_loopback!(upstream)
    %URI{scheme: "http", host: host, port: port} = URI.parse(upstream)
    {:ok, address} = :inet.parse_address(String.to_charlist(host))
    log = :ets.new(__MODULE__, [:ordered_set, :public])
    # Each rule with its index into a counter of the requests it has applied to.
    rules = rules |> Enum.map(&limited/1) |> Enum.with_index(1)
    fired = :atomics.new(max(length(rules), 1), signed: false)
    {proxy_port, _acceptor} = TestHTTP.serve(&handle(&1, {address, port}, {rules, fired}, log))
    %__MODULE__{port: proxy_port, log: log}
  end

  @doc "The proxy's base URL, to use as the store's endpoint."
  @spec url(t()) :: String.t()
  def url(%__MODULE__{port: port}), do: "http://127.0.0.1:#{port}"

  @doc """
  Every request seen so far, oldest first:
  `{method, target, :forwarded | :delayed | :dropped_response | {:failed, status}}`.
  """
  @spec requests(t()) :: [
          {String.t(), String.t(),
           :forwarded | :delayed | :dropped_response | {:failed, pos_integer()}}
        ]
  def requests(%__MODULE__{log: log}), do: log |> :ets.tab2list() |> Enum.map(&elem(&1, 1))

  @doc "How many requests so far had `method` and a target matching `pattern`."
  @spec count(t(), String.t(), Regex.t()) :: non_neg_integer()
  def count(proxy, method, pattern) do
    Enum.count(requests(proxy), fn {m, target, _} -> m == method and target =~ pattern end)
  end

  defp limited({method, pattern, action}), do: {method, pattern, action, :infinity}
  defp limited({_, _, _, times} = rule) when is_integer(times) and times > 0, do: rule

  defp handle(client, upstream, {rules, fired}, log) do
    {:ok, head, rest} = TestHTTP.read_head(client, @timeout)
    {method, target, _version} = head.start
    length = request_body_length(head)

    case Enum.find(rules, &applies?(&1, method, target, fired)) do
      {{_, _, :drop_response, _}, _} ->
        record(log, method, target, :dropped_response)
        forward(client, upstream, head, rest, length, false)

      {{_, _, {:delay, ms}, _}, _} ->
        record(log, method, target, :delayed)
        Process.sleep(ms)
        forward(client, upstream, head, rest, length, true)

      {{_, _, status, _}, _} ->
        record(log, method, target, {:failed, status})
        :ok = relay_exact(client, nil, rest, length)
        :ok = :gen_tcp.send(client, error_response(status))

      nil ->
        record(log, method, target, :forwarded)
        forward(client, upstream, head, rest, length, true)
    end
  rescue
    # The client went away mid-request (its node was killed, say): there is no one to answer.
    e in MatchError ->
      if e.term == {:error, :closed}, do: :ok, else: reraise(e, __STACKTRACE__)
  end

  # A rule applies to a matching request while it has applied fewer than its limit; one atomic
  # count-and-read keeps the limit exact when requests arrive at once.
  defp applies?({{m, pattern, _, times}, index}, method, target, fired) do
    m == method and target =~ pattern and
      (times == :infinity or
         :atomics.add_get(fired, index, 1) <= times)
  end

  defp record(log, method, target, action) do
    :ets.insert(log, {System.unique_integer([:monotonic]), {method, target, action}})
  end

  # object_store sends every body with a Content-Length; a chunked one would need decoding.
  defp request_body_length(head) do
    if TestHTTP.header(head, "transfer-encoding"),
      do: raise("chunked request bodies are not handled by #{inspect(__MODULE__)}")

    String.to_integer(TestHTTP.header(head, "content-length") || "0")
  end

  defp forward(client, {address, port}, head, rest, length, answer?) do
    {:ok, server} = :gen_tcp.connect(address, port, [:binary, active: false], @timeout)

    try do
      :ok = :gen_tcp.send(server, TestHTTP.render(head, [{"connection", "close"}]))
      :ok = relay_exact(client, server, rest, length)
      {:ok, reply, body_start} = TestHTTP.read_head(server, @timeout)
      if answer?, do: answer(client, server, head, reply, body_start), else: :ok
    after
      :gen_tcp.close(server)
    end
  end

  defp answer(client, server, head, reply, body_start) do
    # One request per connection: the client must not keep this one for another request.
    :ok = :gen_tcp.send(client, TestHTTP.render(reply, [{"connection", "close"}]))
    {method, _, _} = head.start

    case response_body_length(method, reply) do
      nil -> relay_until_closed(server, client, body_start)
      n -> relay_exact(server, client, body_start, n)
    end
  end

  defp response_body_length(method, reply) do
    {_version, status, _} = reply.start
    status = String.to_integer(status)

    cond do
      method == "HEAD" or status in [204, 304] or status in 100..199 -> 0
      length = TestHTTP.header(reply, "content-length") -> String.to_integer(length)
      true -> nil
    end
  end

  # Copies exactly `n` bytes (of which `rest` were already read) from `from` to `to`, or
  # discards them when `to` is nil; pieces of at most 1 MiB, so a 5 MiB part is never held whole.
  defp relay_exact(_from, to, rest, n) when byte_size(rest) >= n do
    send_to(to, binary_part(rest, 0, n))
  end

  defp relay_exact(from, to, rest, n) do
    :ok = send_to(to, rest)
    n = n - byte_size(rest)

    case :gen_tcp.recv(from, min(n, @piece), @timeout) do
      {:ok, data} -> relay_exact(from, to, data, n)
      {:error, reason} -> {:error, reason}
    end
  end

  defp relay_until_closed(from, to, data) do
    :ok = send_to(to, data)

    case :gen_tcp.recv(from, 0, @timeout) do
      {:ok, more} -> relay_until_closed(from, to, more)
      {:error, :closed} -> :ok
      {:error, reason} -> {:error, reason}
    end
  end

  defp send_to(_to, ""), do: :ok
  defp send_to(nil, _data), do: :ok
  defp send_to(to, data), do: :gen_tcp.send(to, data)

  defp error_response(status) do
    {code, text} =
      if status >= 500,
        do: {"InternalError", "Internal Server Error"},
        else: {"InvalidRequest", "Bad Request"}

    body =
      ~s(<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>#{code}</Code>) <>
        "<Message>fault injected by the test proxy</Message></Error>"

    "HTTP/1.1 #{status} #{text}\r\ncontent-type: application/xml\r\n" <>
      "content-length: #{byte_size(body)}\r\nconnection: close\r\n\r\n" <> body
  end
end
