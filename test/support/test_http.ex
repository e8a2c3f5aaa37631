defmodule ObjectStoreX.TestHTTP do
  @moduledoc """
  The pieces of a plain HTTP/1.1 server on `:gen_tcp` that the tests' small servers share: a
  listener on 127.0.0.1 whose connections are handled by a function, and reading a request or
  response head. Loopback only.
  """

  @typedoc "A parsed message head: the start line split in three, headers with lower-case names."
  @type head :: %{
          start: {String.t(), String.t(), String.t()},
          headers: [{String.t(), String.t()}]
        }

  @doc """
  Listens on an ephemeral port of 127.0.0.1 and calls `handler.(socket)` for each connection, in
  a process of its own (the handler need not close the socket). The acceptor is linked to the
  caller, so it goes away with the test. Returns `{port, acceptor_pid}`.
  """
  @spec serve((:gen_tcp.socket() -> any())) :: {:inet.port_number(), pid()}
  def serve(handler) do
    {:ok, listen} =
      :gen_tcp.listen(0, [:binary, active: false, reuseaddr: true, ip: {127, 0, 0, 1}])

    {:ok, port} = :inet.port(listen)
    acceptor = spawn_link(fn -> accept(listen, handler) end)
    :ok = :gen_tcp.controlling_process(listen, acceptor)
    {port, acceptor}
  end

  defp accept(listen, handler) do
    {:ok, sock} = :gen_tcp.accept(listen)

    pid =
      spawn(fn ->
        receive do
          :go -> :ok
        end

        try do
          handler.(sock)
        after
          :gen_tcp.close(sock)
        end
      end)

    :ok = :gen_tcp.controlling_process(sock, pid)
    send(pid, :go)
    accept(listen, handler)
  end

  @doc """
  Reads one message head (request or response) from `sock`. Returns `{:ok, head, rest}`, where
  `rest` is what was read beyond the blank line (the start of the body).
  """
  @spec read_head(:gen_tcp.socket(), timeout()) :: {:ok, head(), binary()} | {:error, term()}
  def read_head(sock, timeout \\ 5000), do: read_head(sock, "", timeout)

  defp read_head(sock, acc, timeout) do
    case :binary.split(acc, "\r\n\r\n") do
      [head, rest] ->
        {:ok, parse_head(head), rest}

      [_incomplete] ->
        case :gen_tcp.recv(sock, 0, timeout) do
          {:ok, more} -> read_head(sock, acc <> more, timeout)
          error -> error
        end
    end
  end

  defp parse_head(text) do
    [start | lines] = String.split(text, "\r\n")
    [a, b, c] = String.split(start, " ", parts: 3)

    headers =
      for line <- lines, [k, v] = String.split(line, ":", parts: 2) do
        {String.downcase(k), String.trim(v)}
      end

    %{start: {a, b, c}, headers: headers}
  end

  @doc "The value of header `name` (lower-case) in `head`, or nil."
  @spec header(head(), String.t()) :: String.t() | nil
  def header(%{headers: headers}, name) do
    Enum.find_value(headers, fn {k, v} -> k == name && v end)
  end

  @doc "Renders `head` back to bytes, with the headers in `replace` replacing any of those names."
  @spec render(head(), [{String.t(), String.t()}]) :: iodata()
  def render(%{start: {a, b, c}, headers: headers}, replace \\ []) do
    names = Enum.map(replace, &elem(&1, 0))
    kept = Enum.reject(headers, fn {k, _} -> k in names end)
    lines = Enum.map(kept ++ replace, fn {k, v} -> [k, ": ", v, "\r\n"] end)
    [a, " ", b, " ", c, "\r\n", lines, "\r\n"]
  end
end
