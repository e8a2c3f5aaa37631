defmodule ObjectStoreX.ResumeTest do
  # A streamed download whose connection breaks mid-body resumes from where it stopped, pinned
  # to the ETag; object_store's own retries are off here, so only ObjectStoreX's resumption can
  # finish the download. The server is a real HTTP/1.1 server on loopback that cuts responses.
  use ExUnit.Case, async: true

  alias ObjectStoreX.Stream, as: OSXStream

  @size 3_000_000

  # Serves `data` at any path. The first `cuts` responses stop after half their body and close
  # the connection. Range requests are honoured; If-Match against another ETag gets 412.
  defp cutting_server(data, etag, cuts) do
    {:ok, listen} =
      :gen_tcp.listen(0, [:binary, active: false, reuseaddr: true, ip: {127, 0, 0, 1}])

    {:ok, port} = :inet.port(listen)
    counter = :counters.new(1, [])
    server = spawn_link(fn -> accept(listen, data, etag, cuts, counter) end)
    :ok = :gen_tcp.controlling_process(listen, server)
    on_exit(fn -> Process.exit(server, :kill) end)
    {port, counter}
  end

  defp accept(listen, data, etag, cuts, counter) do
    {:ok, sock} = :gen_tcp.accept(listen)
    :counters.add(counter, 1, 1)
    serve(sock, data, etag, :counters.get(counter, 1) <= cuts)
    accept(listen, data, etag, cuts, counter)
  end

  defp serve(sock, data, etag, cut?) do
    {:ok, request} = recv_headers(sock, "")

    headers =
      request |> String.split("\r\n") |> tl() |> Enum.map(&String.split(&1, ": ", parts: 2))

    header = fn name ->
      Enum.find_value(headers, fn
        [k, v] -> String.downcase(k) == name && v
        _ -> nil
      end)
    end

    size = byte_size(data)
    modified = "Sun, 22 Nov 2026 10:00:00 GMT"

    {status, first, body} =
      case header.("range") do
        nil ->
          {"200 OK", nil, data}

        "bytes=" <> spec ->
          [a, b] = String.split(spec, "-")
          {a, b} = {String.to_integer(a), if(b == "", do: size - 1, else: String.to_integer(b))}
          {"206 Partial Content", {a, b}, binary_part(data, a, b - a + 1)}
      end

    cond do
      header.("if-match") not in [nil, etag] ->
        :gen_tcp.send(sock, "HTTP/1.1 412 Precondition Failed\r\ncontent-length: 0\r\n\r\n")

      true ->
        range_header =
          if first,
            do: "content-range: bytes #{elem(first, 0)}-#{elem(first, 1)}/#{size}\r\n",
            else: ""

        head =
          "HTTP/1.1 #{status}\r\ncontent-length: #{byte_size(body)}\r\netag: #{etag}\r\n" <>
            "last-modified: #{modified}\r\naccept-ranges: bytes\r\n#{range_header}connection: close\r\n\r\n"

        sent = if cut?, do: binary_part(body, 0, div(byte_size(body), 2)), else: body
        :gen_tcp.send(sock, [head, sent])
    end

    :gen_tcp.close(sock)
  end

  defp recv_headers(sock, acc) do
    if String.contains?(acc, "\r\n\r\n") do
      {:ok, acc}
    else
      case :gen_tcp.recv(sock, 0, 5000) do
        {:ok, more} -> recv_headers(sock, acc <> more)
        error -> error
      end
    end
  end

  defp store(port) do
    ObjectStoreX.new!(:http,
      url: "http://127.0.0.1:#{port}",
      allow_http: true,
      retry: [max_retries: 0]
    )
  end

  test "a body cut twice is resumed and arrives whole" do
    data = :crypto.strong_rand_bytes(@size)
    {port, requests} = cutting_server(data, ~s("v1"), 2)
    chunks = OSXStream.download(store(port), "obj.bin", chunk_size: 256 * 1024) |> Enum.to_list()
    assert IO.iodata_to_binary(chunks) == data
    # One request, cut; a resumption, cut; a resumption that completes.
    assert :counters.get(requests, 1) == 3
  end

  test "a body that keeps breaking gives up with an error instead of looping" do
    data = :crypto.strong_rand_bytes(@size)
    {port, requests} = cutting_server(data, ~s("v1"), 1_000)

    assert %ObjectStoreX.Error{} =
             catch_error(OSXStream.download(store(port), "obj.bin") |> Stream.run())

    # Each resumption made progress (half of what was left), so it went on for a while, but
    # it stopped.
    assert :counters.get(requests, 1) < 100
  end
end
